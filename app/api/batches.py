"""/v1/batches: create, retrieve, list (newest first), cancel; and Anthropic's /v1/messages/batches
(create, retrieve, list, cancel, delete, results). Both run as the `execute_batch` job."""
from __future__ import annotations

from litestar import Controller, Request, Response, delete, get, post

from app.api.deps import caller
from app.api.links import public_base_url
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


def _base_url(request: Request) -> str:
    """A Message Batch's `results_url` points back here (app/api/links.py: never a client's Host at its word)."""
    return public_base_url(request)


class MessageBatchesController(Controller):
    """Mounted inside the /v1/messages router, so Anthropic's auth headers and error bodies apply.
    `?beta=true` (the SDK's beta namespace) is accepted and changes nothing."""

    path = "/batches"

    @post("/", status_code=200)
    async def create(self, request: Request) -> dict:
        platform, tenant = caller(request)
        return await platform.message_batches.create(tenant, decode_json_object(await request.body()), _base_url(request))

    @get("/")
    async def list_batches(self, request: Request, limit: int | None = None, after_id: str | None = None,
                           before_id: str | None = None) -> dict:
        platform, tenant = caller(request)
        page = page_params(limit, "desc", after_id, before_id, max_limit=1000)
        return await platform.message_batches.list(tenant, page, _base_url(request))

    @get("/{batch_id:str}")
    async def retrieve(self, request: Request, batch_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.message_batches.get(tenant, batch_id, _base_url(request))

    @post("/{batch_id:str}/cancel", status_code=200)
    async def cancel(self, request: Request, batch_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.message_batches.cancel(tenant, batch_id, _base_url(request))

    @delete("/{batch_id:str}", status_code=200)
    async def delete_batch(self, request: Request, batch_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.message_batches.delete(tenant, batch_id)

    @get("/{batch_id:str}/results")
    async def results(self, request: Request, batch_id: str) -> Response:
        platform, tenant = caller(request)
        return Response(await platform.message_batches.results(tenant, batch_id), media_type="application/x-jsonl")


ANTHROPIC_BATCHES_HANDLERS: list = [MessageBatchesController]
