"""/v1/completions (legacy), /v1/embeddings, /v1/moderations: stateless model calls."""
from __future__ import annotations

from litestar import Request, post
from litestar.response import Stream
from openai.types import completion_create_params, embedding_create_params, moderation_create_params

from app.api.deps import caller
from app.api.relay import relay_response
from app.core.sse import data_events, sse_response
from app.core.bounds import check_bounds
from app.core.validation import decode_json_object, validated


_USAGE_KIND = {"/completions": "completions", "/embeddings": "embeddings"}  # moderations are not metered


async def _relayed_or_none(request: Request, params: dict, raw: bytes, path: str, streaming: bool = False):
    platform, tenant = caller(request)
    relayed = await platform.inference.relay(tenant, params["model"], path, raw, stream=streaming)
    if relayed is None:
        return None
    kind = _USAGE_KIND.get(path)
    return relay_response(relayed, platform.usage.metered(kind, tenant, params["model"]) if kind else None)


@post("/completions", status_code=200)
async def create_completion(request: Request) -> dict | Stream:
    platform, tenant = caller(request)
    raw = await request.body()
    params = decode_json_object(raw)
    streaming = params.get("stream") is True
    await validated(
        completion_create_params.CompletionCreateParamsStreaming if streaming else completion_create_params.CompletionCreateParamsNonStreaming,
        params, len(raw),
    )
    check_bounds("completions", params)
    relayed = await _relayed_or_none(request, params, raw, "/completions", streaming)
    if relayed is not None:
        return relayed
    if streaming:
        return sse_response(data_events(await platform.inference.stream(tenant, "completions_stream", params)))
    return await platform.inference.call(tenant, "completions", params)


@post("/embeddings", status_code=200)
async def create_embeddings(request: Request) -> dict | Stream:
    platform, tenant = caller(request)
    raw = await request.body()
    params = await validated(embedding_create_params.EmbeddingCreateParams, decode_json_object(raw), len(raw))
    check_bounds("embeddings", params)
    relayed = await _relayed_or_none(request, params, raw, "/embeddings")
    return relayed if relayed is not None else await platform.inference.call(tenant, "embeddings", params)


@post("/moderations", status_code=200)
async def create_moderation(request: Request) -> dict:
    platform, tenant = caller(request)
    raw = await request.body()
    params = await validated(moderation_create_params.ModerationCreateParams, decode_json_object(raw), len(raw))
    return await platform.inference.moderations(tenant, params)


STATELESS_HANDLERS = [create_completion, create_embeddings, create_moderation]
