"""/v1/chat/completions: create (streamed or not) and the stored-completions endpoints."""
from __future__ import annotations

from litestar import Controller, Request, delete, get, post
from litestar.types import ASGIApp
from openai.types.chat import completion_create_params as chat_params

from app.api.deps import caller
from app.api.json_body import JSONBody
from app.api.relay import relay_response
from app.core.metadata import metadata_filters
from app.core.pagination import page_params
from app.core.sse import data_events, sse_response
from app.core.bounds import check_bounds
from app.core.data_urls import check_chat_images
from app.core.validation import decode_json_object, required_only, validated


class ChatCompletionsController(Controller):
    path = "/chat/completions"

    @post("/", status_code=200)
    async def create(self, request: Request) -> ASGIApp:
        platform, tenant = caller(request)
        raw = await request.body()
        params = decode_json_object(raw)
        streaming = params.get("stream") is True
        await validated(chat_params.CompletionCreateParamsStreaming if streaming else chat_params.CompletionCreateParamsNonStreaming, params, len(raw))
        check_bounds("chat", params)
        check_chat_images(params.get("messages"))
        relayed = await platform.chat.relay(tenant, params, raw)
        if relayed is not None:
            return relay_response(relayed, platform.usage.metered("completions", tenant, params.get("model")))
        if streaming:
            return sse_response(data_events(await platform.chat.create_stream(tenant, params)))
        return JSONBody(await platform.chat.create(tenant, params))

    @get("/")
    async def list_completions(
        self, request: Request, model: str | None = None, limit: int | None = None, order: str | None = None, after: str | None = None
    ) -> dict:
        platform, tenant = caller(request)
        page = page_params(limit, order or "asc", after)
        return await platform.chat.list(tenant, page, model, metadata_filters(request.query_params.multi_items()))

    @get("/{completion_id:str}")
    async def retrieve(self, request: Request, completion_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.chat.get(tenant, completion_id)

    @post("/{completion_id:str}", status_code=200)
    async def update(self, request: Request, completion_id: str) -> dict:
        platform, tenant = caller(request)
        metadata = required_only(decode_json_object(await request.body()), "metadata")
        return await platform.chat.update(tenant, completion_id, metadata)

    @delete("/{completion_id:str}", status_code=200)
    async def delete_completion(self, request: Request, completion_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.chat.delete(tenant, completion_id)

    @get("/{completion_id:str}/messages")
    async def messages(
        self, request: Request, completion_id: str, limit: int | None = None, order: str | None = None, after: str | None = None
    ) -> dict:
        platform, tenant = caller(request)
        return await platform.chat.messages(tenant, completion_id, page_params(limit, order or "asc", after))
