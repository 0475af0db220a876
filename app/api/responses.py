"""/v1/responses: create (answered, streamed or in the background), retrieve (or replay a background
response's events), delete, cancel, input items, input token counts, compaction.

A model routed to an upstream that speaks Responses is relayed there as it is (app/services/responses/
relay.py); ids this server did not store then belong to that upstream, and requests about them go there."""
from __future__ import annotations

from typing import Any, Awaitable

from litestar import Controller, Request, delete, get, post
from litestar.response import Stream
from openai.types.responses import response_create_params as create_params

from app.api.deps import caller
from app.api.relay import relay_response
from app.core.errors import APIError, invalid_request
from app.core.pagination import page_params
from app.core.sse import named_events, sse_response
from app.core.bounds import check_bounds
from app.core.data_urls import check_response_images
from app.core.validation import decode_json_object, validated

try:
    from openai.types.responses.input_token_count_params import InputTokenCountParams
except ImportError:  # an SDK without the input-tokens endpoint
    InputTokenCountParams = None
try:
    from openai.types.responses.response_compact_params import ResponseCompactParams
except ImportError:  # an SDK without compaction
    ResponseCompactParams = None


async def _relayed_or_checked(request: Request, path: str, params_type) -> tuple[dict, Any]:
    """The body, and the upstream's answer when the model is relayed to one that speaks Responses (which
    then checks the body itself); otherwise the body is checked here against the SDK's type (if it has one)."""
    platform, tenant = caller(request)
    raw = await request.body()
    body = decode_json_object(raw)
    relayed = await platform.responses.relay(tenant, path, body, raw)
    if relayed is None and params_type is not None:
        await validated(params_type, body, len(raw))
    return body, relayed


async def _here_or_upstream(request: Request, response_id: str, local: Awaitable, suffix: str = "") -> dict | Stream:
    """The local answer; for an id not stored here (404), the upstream's, when one speaks Responses."""
    try:
        return await local
    except APIError as error:
        if error.status_code != 404:
            raise
        platform, tenant = caller(request)
        body = await request.body() if request.method == "POST" else b""
        relayed = await platform.responses.relay_by_id(tenant, request.method, response_id, suffix, request.url.query or "",
                                                       body, request.headers.get("content-type"))
        if relayed is None:
            raise
        return relay_response(relayed)


class ResponsesController(Controller):
    path = "/responses"

    @post("/", status_code=200)
    async def create(self, request: Request) -> dict | Stream:
        platform, tenant = caller(request)
        raw = await request.body()
        body = decode_json_object(raw)
        relayed = await platform.responses.relay(tenant, "/responses", body, raw)
        if relayed is not None:
            return relay_response(relayed, platform.usage.metered("completions", tenant, body.get("model")))
        body.pop("client_metadata", None)  # Codex's request tags: accepted, not kept
        streaming = body.get("stream") is True
        await validated(create_params.ResponseCreateParamsStreaming if streaming else create_params.ResponseCreateParamsNonStreaming, body, len(raw))
        check_bounds("responses", body)
        check_response_images(body.get("input"))
        body.pop("stream", None)
        body.pop("stream_options", None)
        if "model" not in body:
            raise invalid_request("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
        result = await platform.responses.create(tenant, body, streaming)
        return sse_response(named_events(result)) if streaming else result

    @post("/input_tokens", status_code=200)
    async def input_tokens(self, request: Request) -> dict | Stream:
        body, relayed = await _relayed_or_checked(request, "/responses/input_tokens", InputTokenCountParams)
        if relayed is not None:
            return relay_response(relayed)
        platform, tenant = caller(request)
        return await platform.responses.input_tokens(tenant, body)

    @post("/compact", status_code=200)
    async def compact(self, request: Request) -> dict | Stream:
        body, relayed = await _relayed_or_checked(request, "/responses/compact", ResponseCompactParams)
        if relayed is not None:
            return relay_response(relayed)
        platform, tenant = caller(request)
        check_response_images(body.get("input"))
        if not isinstance(body.get("model"), str):
            raise invalid_request("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
        return await platform.responses.compact(tenant, body)

    @get("/{response_id:str}")
    async def retrieve(self, request: Request, response_id: str, stream: bool = False, starting_after: int | None = None) -> dict | Stream:
        platform, tenant = caller(request)

        async def local() -> dict | Stream:
            if stream:
                return sse_response(named_events(await platform.responses.replay(tenant, response_id, starting_after)))
            include = request.query_params.getall("include[]", []) + request.query_params.getall("include", [])
            return await platform.responses.get(tenant, response_id, include)
        return await _here_or_upstream(request, response_id, local())

    @delete("/{response_id:str}", status_code=200)
    async def delete_response(self, request: Request, response_id: str) -> dict | Stream:
        platform, tenant = caller(request)
        return await _here_or_upstream(request, response_id, platform.responses.delete(tenant, response_id))

    @post("/{response_id:str}/cancel", status_code=200)
    async def cancel(self, request: Request, response_id: str) -> dict | Stream:
        platform, tenant = caller(request)
        return await _here_or_upstream(request, response_id, platform.responses.cancel(tenant, response_id), "/cancel")

    @get("/{response_id:str}/input_items")
    async def input_items(self, request: Request, response_id: str, limit: int | None = None, order: str | None = None,
                          after: str | None = None, before: str | None = None) -> dict | Stream:
        platform, tenant = caller(request)

        async def local() -> dict:
            return await platform.responses.input_items(tenant, response_id, page_params(limit, order, after, before))
        return await _here_or_upstream(request, response_id, local(), "/input_items")


RESPONSES_HANDLERS: list = [ResponsesController]
