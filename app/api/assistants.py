"""/v1/assistants: create, list, retrieve, update, delete."""
from __future__ import annotations

from litestar import Controller, Request, delete, get, post
from openai.types.beta import assistant_create_params, assistant_update_params

from app.api.deps import caller
from app.core.pagination import page_params
from app.core.validation import decode_json_object, validate_params
from app.services.assistants.assistants import precheck


async def _body(request: Request, params_type) -> dict:
    body = decode_json_object(await request.body())
    precheck(body)
    return validate_params(params_type, body)


class AssistantsController(Controller):
    path = "/assistants"

    @post("/", status_code=200)
    async def create(self, request: Request) -> dict:
        platform, tenant = caller(request)
        return await platform.assistants.create(tenant, await _body(request, assistant_create_params.AssistantCreateParams))

    @get("/")
    async def list_assistants(self, request: Request, limit: int | None = None, order: str | None = None, after: str | None = None, before: str | None = None) -> dict:
        platform, tenant = caller(request)
        return await platform.assistants.list(tenant, page_params(limit, order, after, before))

    @get("/{assistant_id:str}")
    async def retrieve(self, request: Request, assistant_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.assistants.get(tenant, assistant_id)

    @post("/{assistant_id:str}", status_code=200)
    async def update(self, request: Request, assistant_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.assistants.update(tenant, assistant_id, await _body(request, assistant_update_params.AssistantUpdateParams))

    @delete("/{assistant_id:str}", status_code=200)
    async def delete_assistant(self, request: Request, assistant_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.assistants.delete(tenant, assistant_id)
