"""Provider errors as the client's API errors, raised before a stream starts when possible."""
from __future__ import annotations

from typing import AsyncIterator, TypeVar

from app.core.errors import APIError
from app.inference.base import UpstreamError

T = TypeVar("T")


# What a client needs to back off properly when an upstream rate-limits.
_PASSED_HEADERS = ("retry-after", "retry-after-ms")


def api_error(error: UpstreamError) -> APIError:
    body = error.body.get("error") or {}
    headers = {k: v for k, v in error.headers.items() if k.lower() in _PASSED_HEADERS or k.lower().startswith("x-ratelimit-")}
    return APIError(
        body.get("message") or "The upstream provider returned an error.",
        status_code=error.status_code,
        type=body.get("type") or ("server_error" if error.status_code >= 500 else "invalid_request_error"),
        param=body.get("param"),
        code=body.get("code"),
        headers=headers,
    )


async def started(stream: AsyncIterator[T]) -> AsyncIterator[T]:
    """Pulls the first item now, so an error before any output is an ordinary error response; the
    returned iterator yields that item and then the rest."""
    try:
        first = await anext(stream)
    except StopAsyncIteration:
        first = None
        empty = True
    except UpstreamError as error:
        raise api_error(error) from None
    else:
        empty = False

    async def rest() -> AsyncIterator[T]:
        if empty:
            return
        yield first
        async for item in stream:
            yield item

    return rest()
