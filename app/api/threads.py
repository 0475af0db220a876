"""/v1/threads and their messages. (Runs, and `POST /threads/runs`, are app/api/runs.py's.)"""
from __future__ import annotations

from litestar import Controller, Request, delete, get, post
from openai.types.beta import thread_create_params, thread_update_params
from openai.types.beta.threads import message_create_params, message_update_params

from app.api.deps import caller
from app.core.pagination import page_params
from app.core.validation import decode_json_object, validate_params
from app.services.assistants.thread_messages import precheck


class ThreadsController(Controller):
    path = "/threads"

    @post("/", status_code=200)
    async def create(self, request: Request) -> dict:
        platform, tenant = caller(request)
        body = decode_json_object(await request.body())
        messages = body.get("messages")
        for index, message in enumerate(messages if isinstance(messages, list) else ()):
            precheck(message, f"messages[{index}].")
        return await platform.threads.create(tenant, validate_params(thread_create_params.ThreadCreateParams, body))

    @get("/{thread_id:str}")
    async def retrieve(self, request: Request, thread_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.threads.get(tenant, thread_id)

    @post("/{thread_id:str}", status_code=200)
    async def update(self, request: Request, thread_id: str) -> dict:
        platform, tenant = caller(request)
        params = validate_params(thread_update_params.ThreadUpdateParams, decode_json_object(await request.body()))
        return await platform.threads.update(tenant, thread_id, params)

    @delete("/{thread_id:str}", status_code=200)
    async def delete_thread(self, request: Request, thread_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.threads.delete(tenant, thread_id)

    # --- messages -----------------------------------------------------------------------------------------

    @post("/{thread_id:str}/messages", status_code=200)
    async def create_message(self, request: Request, thread_id: str) -> dict:
        platform, tenant = caller(request)
        body = decode_json_object(await request.body())
        precheck(body)
        return await platform.thread_messages.create(tenant, thread_id, validate_params(message_create_params.MessageCreateParams, body))

    @get("/{thread_id:str}/messages")
    async def list_messages(
        self, request: Request, thread_id: str, limit: int | None = None, order: str | None = None, after: str | None = None,
        before: str | None = None, run_id: str | None = None,
    ) -> dict:
        platform, tenant = caller(request)
        return await platform.thread_messages.list(tenant, thread_id, page_params(limit, order, after, before), run_id)

    @get("/{thread_id:str}/messages/{message_id:str}")
    async def retrieve_message(self, request: Request, thread_id: str, message_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.thread_messages.get(tenant, thread_id, message_id)

    @post("/{thread_id:str}/messages/{message_id:str}", status_code=200)
    async def update_message(self, request: Request, thread_id: str, message_id: str) -> dict:
        platform, tenant = caller(request)
        body = decode_json_object(await request.body())
        validate_params(message_update_params.MessageUpdateParams, {**body, "thread_id": thread_id})  # the SDK's type includes the path id
        return await platform.thread_messages.update(tenant, thread_id, message_id, body)

    @delete("/{thread_id:str}/messages/{message_id:str}", status_code=200)
    async def delete_message(self, request: Request, thread_id: str, message_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.thread_messages.delete(tenant, thread_id, message_id)
