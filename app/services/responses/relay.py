"""Responses relayed to an upstream that speaks them (a provider with `responses = true`; OpenAI's own
URL by default): the client's body as it is, our credentials, the upstream's answer (status, headers,
SSE bytes) passed straight back. Nothing of the response is stored here, so its id is the upstream's:
the id is read from the first bytes as they pass and bound to the tenant that created it, and only
that tenant's requests about it are relayed (`by_id`) — the upstream sees our one key for everyone.

Why relay rather than translate: a translation to chat completions loses what chat cannot say
(reasoning items, hosted tools, the upstream's own storage and `previous_response_id` chains); an
upstream that speaks Responses answers them itself.
"""
from __future__ import annotations

import re
from urllib.parse import quote

from app.inference.base import RelayResponse, UpstreamError
from app.services.inference_errors import api_error

_ID = re.compile(rb'"id"\s*:\s*"(resp_[A-Za-z0-9_\-]+)"')
_SNIFF_BYTES = 8192  # the id comes first in a Response object and in `response.created`


def speaking_provider(inference, model):
    """The provider `model` routes to, when it speaks the Responses API; else None (translated here)."""
    if not isinstance(model, str):
        return None  # the local path reports the bad body
    provider = inference.router.route(model)
    return provider if getattr(provider, "speaks_responses", False) else None


async def relay(provider, method: str, path: str, body: bytes | None, *, content_type: str | None = None,
                stream: bool = False) -> RelayResponse:
    headers = {"content-type": content_type} if content_type and body else {}
    try:
        return await provider.relay(method, path, body=body or None, headers=headers, stream=stream)
    except UpstreamError as error:  # unreachable, after the retries
        raise api_error(error) from None


async def create(inference, path: str, body: dict, raw: bytes, on_id=None) -> RelayResponse | None:
    """POST /responses (or /responses/input_tokens) relayed, when the body's model routes to a provider
    that speaks Responses; `on_id(id)` is awaited once the response's id has passed by."""
    provider = speaking_provider(inference, body.get("model"))
    if provider is None:
        return None
    relayed = await relay(provider, "POST", path, raw, content_type="application/json", stream=body.get("stream") is True)
    if on_id is not None and relayed.status_code == 200:
        relayed.body = _watching(relayed.body, on_id)
    return relayed


async def _watching(chunks, on_id):
    """The bytes unchanged; the first response id among the first bytes handed to `on_id`."""
    seen, found = b"", False
    async for chunk in chunks:
        if not found and len(seen) < _SNIFF_BYTES:
            seen += chunk
            match = _ID.search(seen)
            if match is not None:
                found = True
                await on_id(match.group(1).decode())
        yield chunk


async def by_id(inference, method: str, response_id: str, suffix: str = "", query: str = "", body: bytes = b"",
                content_type: str | None = None) -> RelayResponse | None:
    """A request about a response this server did not store, relayed to the first provider that speaks
    Responses; None when there is none."""
    provider = inference.router.responses_provider() if hasattr(inference.router, "responses_provider") else None
    if provider is None:
        return None
    path = f"/responses/{quote(response_id, safe='')}{suffix}" + (f"?{query}" if query else "")
    return await relay(provider, method, path, body, content_type=content_type, stream="stream=true" in query)
