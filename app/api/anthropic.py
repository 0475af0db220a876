"""/v1/messages, /v1/messages/count_tokens and /v1/messages/batches: the Anthropic Messages API, in Anthropic's shapes.

Errors here are Anthropic's `{"type": "error", "error": {"type", "message"}}`, not OpenAI's: the
router carries its own exception handlers. `?beta=true` (what Claude Code sends) is accepted.
"""
from __future__ import annotations

from litestar import Request, Router, post
from litestar.response import Stream

from app.api.batches import ANTHROPIC_BATCHES_HANDLERS
from app.api.deps import AuthMiddleware, caller
from app.api.rate_limits import RateLimitMiddleware
from app.api.errors import translated_handlers
from app.api.relay import relay_response
from app.core.sse import named_events, sse_response
from app.core.validation import decode_json_object
from app.inference.translate.anthropic import openai_error_to_anthropic
from app.services.messages import check_message_params


@post("/", status_code=200)
async def create_message(request: Request) -> dict | Stream:
    platform, tenant = caller(request)
    raw = await request.body()
    params = check_message_params(decode_json_object(raw))
    path = "/v1/messages" + ("?beta=true" if request.query_params.get("beta") == "true" else "")
    relayed = await platform.messages.relay(tenant, params, raw, path=path, headers=dict(request.headers))
    if relayed is not None:
        return relay_response(relayed, platform.usage.metered("completions", tenant, params["model"]))
    if params.get("stream") is True:
        return sse_response(named_events(await platform.messages.create_stream(tenant, params)))
    return await platform.messages.create(tenant, params)


@post("/count_tokens", status_code=200)
async def count_tokens(request: Request) -> dict:
    platform, tenant = caller(request)
    return await platform.messages.count_tokens(tenant, decode_json_object(await request.body()))


anthropic_router = Router(
    path="/v1/messages",
    route_handlers=[create_message, count_tokens, *ANTHROPIC_BATCHES_HANDLERS],
    middleware=[AuthMiddleware, RateLimitMiddleware],
    exception_handlers=translated_handlers(openai_error_to_anthropic, with_request_id=True),
)
