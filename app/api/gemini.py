"""Gemini's native REST shape: `POST /v1beta/models/{model}:generateContent` and
`:streamGenerateContent` (SSE with `alt=sse`, else one JSON array), also under `/v1/gemini/{model}:…`.
Errors are Gemini's `{"error": {"code", "message", "status"}}`; keys come as `x-goog-api-key` or `?key=`."""
from __future__ import annotations

import msgspec
from litestar import Request, Router, post
from litestar.response import Stream

from app.api.deps import AuthMiddleware, caller
from app.api.errors import translated_handlers
from app.api.relay import relay_response
from app.core.sse import EventStream, data_events, sse_response
from app.core.validation import decode_json_object
from app.inference.base import RelayResponse
from app.inference.http import iter_sse
from app.inference.translate.gemini import openai_error_to_gemini
from app.services.gemini import split_model_action


async def _json_array(pieces):
    """Without `alt=sse` Gemini streams one JSON array (of encoded responses), element by element."""
    first = True
    async for piece in pieces:
        yield (b"[" if first else b",\r\n") + piece
        first = False
    yield b"[]" if first else b"]"


async def _encoded(responses):
    async for response in responses:
        yield msgspec.json.encode(response)


async def _sse_payloads(body):
    async for _, data in iter_sse(body):
        yield data.encode()


def _as_json_array(relayed: RelayResponse) -> RelayResponse:
    """A relayed stream is always asked of the upstream as SSE: a client that did not ask for `alt=sse`
    gets the same responses as Gemini's JSON array (error bodies stay as they are)."""
    if relayed.status_code >= 400:
        return relayed
    headers = {**relayed.headers, "content-type": "application/json"}
    return RelayResponse(relayed.status_code, headers, _json_array(_sse_payloads(relayed.body)), relayed.close)


@post("/{model_action:str}", status_code=200)
async def generate_content(request: Request, model_action: str) -> dict | Stream:
    platform, tenant = caller(request)
    model, action = split_model_action(model_action)
    raw = await request.body()
    body = decode_json_object(raw)
    streaming = action == "streamGenerateContent"
    as_sse = request.query_params.get("alt") == "sse"
    relayed = await platform.gemini.relay(tenant, model, action, raw, stream=streaming, body=body)
    if relayed is not None:
        return relay_response(_as_json_array(relayed) if streaming and not as_sse else relayed)
    if not streaming:
        return await platform.gemini.generate(tenant, model, body)
    responses = await platform.gemini.generate_stream(tenant, model, body)
    if as_sse:
        return sse_response(data_events(responses, done=False))  # Gemini sends no [DONE]
    return EventStream(_json_array(_encoded(responses)), media_type="application/json")


def _router(path: str) -> Router:
    return Router(
        path=path,
        route_handlers=[generate_content],
        middleware=[AuthMiddleware],
        exception_handlers=translated_handlers(openai_error_to_gemini),
    )


gemini_routers = [_router("/v1beta/models"), _router("/v1/gemini")]
