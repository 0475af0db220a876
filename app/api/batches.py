"""/v1/batches: create, retrieve, list (newest first), cancel. Execution is the `execute_batch` job."""
from __future__ import annotations

from litestar import Controller, Request, get, post

from app.api.deps import caller
from app.core.errors import APIError
from app.core.pagination import page_params
from app.core.validation import decode_json_object

_FIELDS = ("input_file_id", "endpoint", "completion_window", "metadata", "output_expires_after")


class BatchesController(Controller):
    path = "/batches"

    @post("/", status_code=200)
    async def create(self, request: Request) -> dict:
        platform, tenant = caller(request)
        body = decode_json_object(await request.body())
        for key in body:
            if key not in _FIELDS:
                raise APIError(f"Unknown parameter: '{key}'.", param=key, code="unknown_parameter")
        return await platform.batches.create(tenant, body)

    @get("/")
    async def list_batches(self, request: Request, limit: int | None = None, after: str | None = None) -> dict:
        platform, tenant = caller(request)
        return await platform.batches.list(tenant, page_params(limit, "desc", after))

    @get("/{batch_id:str}")
    async def retrieve(self, request: Request, batch_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.batches.get(tenant, batch_id)

    @post("/{batch_id:str}/cancel", status_code=200)
    async def cancel(self, request: Request, batch_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.batches.cancel(tenant, batch_id)


BATCHES_HANDLERS: list = [BatchesController]
ANTHROPIC_BATCHES_HANDLERS: list = []  # mounted beside /v1/messages (Anthropic's auth and errors)
