"""/v1/vector_stores: stores, their files, file batches and search."""
from __future__ import annotations

from litestar import Controller, Request, delete, get, post
from openai.types import vector_store_create_params, vector_store_search_params, vector_store_update_params
from openai.types.vector_stores import file_batch_create_params, file_create_params

from app.api.deps import caller
from app.core.pagination import page_params
from app.core.validation import decode_json_object, required_only, validate_params


async def _body(request: Request, params_type, *, extensions: tuple[str, ...] = ()) -> dict:
    body = decode_json_object(await request.body())
    extra = {name: body.pop(name) for name in extensions if name in body}
    return {**validate_params(params_type, body), **extra}


class VectorStoresController(Controller):
    path = "/vector_stores"

    @post("/", status_code=200)
    async def create(self, request: Request) -> dict:
        platform, tenant = caller(request)
        # `embedding_model` is Understudy's own: which model embeds this store's chunks.
        params = await _body(request, vector_store_create_params.VectorStoreCreateParams, extensions=("embedding_model",))
        return await platform.vector_stores.create(tenant, params)

    @get("/")
    async def list_stores(self, request: Request, limit: int | None = None, order: str | None = None, after: str | None = None, before: str | None = None) -> dict:
        platform, tenant = caller(request)
        return await platform.vector_stores.list(tenant, page_params(limit, order, after, before))

    @get("/{store_id:str}")
    async def retrieve(self, request: Request, store_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.vector_stores.get(tenant, store_id)

    @post("/{store_id:str}", status_code=200)
    async def update(self, request: Request, store_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.vector_stores.update(tenant, store_id, await _body(request, vector_store_update_params.VectorStoreUpdateParams))

    @delete("/{store_id:str}", status_code=200)
    async def delete_store(self, request: Request, store_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.vector_stores.delete(tenant, store_id)

    @post("/{store_id:str}/search", status_code=200)
    async def search(self, request: Request, store_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.vector_search.search(tenant, store_id, await _body(request, vector_store_search_params.VectorStoreSearchParams))

    # --- files ------------------------------------------------------------------------------------------

    @post("/{store_id:str}/files", status_code=200)
    async def attach_file(self, request: Request, store_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.vector_store_files.create(tenant, store_id, await _body(request, file_create_params.FileCreateParams))

    @get("/{store_id:str}/files")
    async def list_files(
        self, request: Request, store_id: str, limit: int | None = None, order: str | None = None, after: str | None = None,
        before: str | None = None, filter: str | None = None,
    ) -> dict:
        platform, tenant = caller(request)
        return await platform.vector_store_files.list(tenant, store_id, page_params(limit, order, after, before), filter)

    @get("/{store_id:str}/files/{file_id:str}")
    async def retrieve_file(self, request: Request, store_id: str, file_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.vector_store_files.get(tenant, store_id, file_id)

    @post("/{store_id:str}/files/{file_id:str}", status_code=200)
    async def update_file(self, request: Request, store_id: str, file_id: str) -> dict:
        platform, tenant = caller(request)
        attributes = required_only(decode_json_object(await request.body()), "attributes")
        return await platform.vector_store_files.update(tenant, store_id, file_id, attributes)

    @delete("/{store_id:str}/files/{file_id:str}", status_code=200)
    async def detach_file(self, request: Request, store_id: str, file_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.vector_store_files.delete(tenant, store_id, file_id)

    @get("/{store_id:str}/files/{file_id:str}/content")
    async def file_content(self, request: Request, store_id: str, file_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.vector_store_files.content(tenant, store_id, file_id)

    # --- file batches -------------------------------------------------------------------------------------

    @post("/{store_id:str}/file_batches", status_code=200)
    async def create_batch(self, request: Request, store_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.file_batches.create(tenant, store_id, await _body(request, file_batch_create_params.FileBatchCreateParams))

    @get("/{store_id:str}/file_batches/{batch_id:str}")
    async def retrieve_batch(self, request: Request, store_id: str, batch_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.file_batches.get(tenant, store_id, batch_id)

    @post("/{store_id:str}/file_batches/{batch_id:str}/cancel", status_code=200)
    async def cancel_batch(self, request: Request, store_id: str, batch_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.file_batches.cancel(tenant, store_id, batch_id)

    @get("/{store_id:str}/file_batches/{batch_id:str}/files")
    async def list_batch_files(
        self, request: Request, store_id: str, batch_id: str, limit: int | None = None, order: str | None = None,
        after: str | None = None, before: str | None = None, filter: str | None = None,
    ) -> dict:
        platform, tenant = caller(request)
        return await platform.file_batches.list_files(tenant, store_id, batch_id, page_params(limit, order, after, before), filter)
