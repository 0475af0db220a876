"""/v1/conversations and their items."""
from __future__ import annotations

from litestar import Controller, Request, delete, get, post
from openai.types.conversations import conversation_create_params, conversation_update_params, item_create_params, item_list_params

from app.api.deps import caller
from app.core.pagination import page_params
from app.core.validation import decode_json_object, validate_params
from app.services.conversations import check_items


def _include(request: Request) -> tuple[str, ...]:
    include = request.query_params.getall("include[]", []) + request.query_params.getall("include", [])
    if include:
        validate_params(item_list_params.ItemListParams, {"include": include})
    return tuple(include)


class ConversationsController(Controller):
    path = "/conversations"

    @post("/", status_code=200)
    async def create(self, request: Request) -> dict:
        platform, tenant = caller(request)
        body = decode_json_object(await request.body())
        check_items(body.get("items"))  # length and item types, with OpenAI's wording, before the SDK's union
        return await platform.conversations.create(tenant, validate_params(conversation_create_params.ConversationCreateParams, body))

    @get("/{conversation_id:str}")
    async def retrieve(self, request: Request, conversation_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.conversations.get(tenant, conversation_id)

    @post("/{conversation_id:str}", status_code=200)
    async def update(self, request: Request, conversation_id: str) -> dict:
        platform, tenant = caller(request)
        params = validate_params(conversation_update_params.ConversationUpdateParams, decode_json_object(await request.body()))
        return await platform.conversations.update(tenant, conversation_id, params)

    @delete("/{conversation_id:str}", status_code=200)
    async def delete_conversation(self, request: Request, conversation_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.conversations.delete(tenant, conversation_id)

    # --- items --------------------------------------------------------------------------------------------

    @post("/{conversation_id:str}/items", status_code=200)
    async def create_items(self, request: Request, conversation_id: str) -> dict:
        platform, tenant = caller(request)
        include = _include(request)
        body = decode_json_object(await request.body())
        if "items" in body:
            check_items(body["items"])
        params = validate_params(item_create_params.ItemCreateParams, body)
        return await platform.conversations.add_items(tenant, conversation_id, params["items"], include)

    @get("/{conversation_id:str}/items")
    async def list_items(
        self, request: Request, conversation_id: str, limit: int | None = None, order: str | None = None, after: str | None = None,
    ) -> dict:
        platform, tenant = caller(request)
        page = page_params(limit, order, after)
        return await platform.conversations.list_items(tenant, conversation_id, page, _include(request))

    @get("/{conversation_id:str}/items/{item_id:str}")
    async def retrieve_item(self, request: Request, conversation_id: str, item_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.conversations.get_item(tenant, conversation_id, item_id, _include(request))

    @delete("/{conversation_id:str}/items/{item_id:str}", status_code=200)
    async def delete_item(self, request: Request, conversation_id: str, item_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.conversations.delete_item(tenant, conversation_id, item_id)


CONVERSATIONS_HANDLERS: list = [ConversationsController]
