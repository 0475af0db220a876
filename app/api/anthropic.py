"""/v1/messages and /v1/messages/count_tokens: the Anthropic Messages API, in Anthropic's shapes.

Errors here are Anthropic's `{"type": "error", "error": {"type", "message"}}`, not OpenAI's: the
router carries its own exception handlers. `?beta=true` (what Claude Code sends) is accepted.
"""
from __future__ import annotations

from litestar import Request, Response, Router, post
from litestar.exceptions import HTTPException
from litestar.response import Stream

from app.api.deps import AuthMiddleware, caller
from app.api.errors import http_exception_handler, unexpected_error_handler
from app.api.relay import relay_response
from app.core.errors import APIError
from app.core.sse import SSEvent, sse_response
from app.core.validation import decode_json_object
from app.inference.translate.anthropic import openai_error_to_anthropic
from app.services.messages import check_message_params


def _anthropic(response: Response) -> Response:
    body = openai_error_to_anthropic(response.status_code, response.content)
    return Response(content=body, status_code=response.status_code, headers=dict(response.headers))


def anthropic_api_error(request: Request, exc: APIError) -> Response:
    return _anthropic(Response(content=exc.body(), status_code=exc.status_code, headers=exc.headers or None))


def anthropic_http_error(request: Request, exc: HTTPException) -> Response:
    return _anthropic(http_exception_handler(request, exc))


def anthropic_unexpected_error(request: Request, exc: Exception) -> Response:
    return _anthropic(unexpected_error_handler(request, exc))


async def _events(events):
    async for name, data in events:
        yield SSEvent(data, event=name)


@post("/", status_code=200)
async def create_message(request: Request) -> dict | Stream:
    platform, tenant = caller(request)
    raw = await request.body()
    params = check_message_params(decode_json_object(raw))
    path = "/v1/messages" + ("?beta=true" if request.query_params.get("beta") == "true" else "")
    relayed = await platform.messages.relay(tenant, params, raw, path=path, headers=dict(request.headers))
    if relayed is not None:
        return relay_response(relayed)
    if params.get("stream") is True:
        return sse_response(_events(await platform.messages.create_stream(tenant, params)))
    return await platform.messages.create(tenant, params)


@post("/count_tokens", status_code=200)
async def count_tokens(request: Request) -> dict:
    platform, tenant = caller(request)
    return platform.messages.count_tokens(tenant, decode_json_object(await request.body()))


anthropic_router = Router(
    path="/v1/messages",
    route_handlers=[create_message, count_tokens],
    middleware=[AuthMiddleware],
    exception_handlers={APIError: anthropic_api_error, HTTPException: anthropic_http_error, Exception: anthropic_unexpected_error},
)
