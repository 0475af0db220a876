"""Files in vector stores: attach (ingested by a job), list, retrieve, update attributes, detach,
and the parsed content. Detaching removes the file's chunks, keyword entries and vectors; the File
itself stays."""
from __future__ import annotations

import time

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.core.errors import invalid_request, not_found
from app.core.pagination import Page, fetch_page, list_body
from app.services.files import FilesService, Row
from app.services.vector_stores.chunking import validate_chunking_strategy
from app.services.vector_stores.links import StoreFileLinks, StoreRows
from storage.db import Database
from storage.models import Chunk, VectorStoreFile
from storage.prepared import Prepared
from app.core.queue import JobQueue

store_files = VectorStoreFile.__table__
chunks = Chunk.__table__
STATUSES = ("in_progress", "completed", "failed", "cancelled")
_GET = Prepared(
    select(store_files).where(
        store_files.c.vector_store_id == bindparam("store_id"), store_files.c.id == bindparam("file_id"), store_files.c.tenant_id == bindparam("tenant_id")
    )
)
_MAX_ATTRIBUTES, _MAX_KEY, _MAX_VALUE = 16, 64, 512


def check_attributes(attributes) -> dict | None:
    if attributes is None:
        return None
    if not isinstance(attributes, dict) or len(attributes) > _MAX_ATTRIBUTES:
        raise invalid_request(f"Invalid 'attributes': an object with at most {_MAX_ATTRIBUTES} keys.", param="attributes", code="invalid_value")
    for key, value in attributes.items():
        if len(key) > _MAX_KEY:
            raise invalid_request(f"Invalid 'attributes': keys are at most {_MAX_KEY} characters.", param=f"attributes.{key}", code="invalid_value")
        if not isinstance(value, (str, int, float, bool)) or (isinstance(value, str) and len(value) > _MAX_VALUE):
            raise invalid_request(
                f"Invalid 'attributes.{key}': a string (at most {_MAX_VALUE} characters), number or boolean.", param=f"attributes.{key}", code="invalid_value"
            )
    return attributes


def file_object(row) -> dict:
    return {
        "id": row.id, "object": "vector_store.file", "created_at": row.created_at, "vector_store_id": row.vector_store_id,
        "status": row.status, "last_error": row.last_error, "usage_bytes": row.usage_bytes,
        "chunking_strategy": row.chunking_strategy, "attributes": row.attributes or {},
    }


class VectorStoreFilesService:
    def __init__(self, db: Database, files: FilesService, stores: StoreRows, links: StoreFileLinks, queue: JobQueue) -> None:
        self._db = db
        self._files = files
        self._stores = stores
        self._links = links
        self._queue = queue

    async def check_attachable(self, tenant_id: str, file_ids: list[str], strategy: dict | None) -> dict:
        validated = validate_chunking_strategy(strategy)
        for file_id in file_ids:
            await self._files.get(tenant_id, file_id)  # 404 for unknown (or other tenants') files
        return validated

    async def attach(self, tenant_id: str, store_id: str, file_id: str, *, attributes, chunking_strategy, batch_id: str | None = None) -> dict:
        strategy = await self.check_attachable(tenant_id, [file_id], chunking_strategy)
        values = dict(
            id=file_id, vector_store_id=store_id, tenant_id=tenant_id, batch_id=batch_id, created_at=int(time.time()),
            status="in_progress", last_error=None, usage_bytes=0, chunking_strategy=strategy, attributes=check_attributes(attributes),
        )
        try:
            async with self._db.begin() as conn:
                await conn.execute(insert(store_files).values(**values))
        except IntegrityError:  # already attached: OpenAI answers with the existing vector store file
            return file_object(await self.row(tenant_id, store_id, file_id))
        await self._queue.enqueue("ingest_file", key=f"ingest:{store_id}:{file_id}", vector_store_id=store_id, file_id=file_id)
        return file_object(Row(values))

    async def create(self, tenant_id: str, store_id: str, params: dict) -> dict:
        row = await self._stores.usable_row(tenant_id, store_id)
        attached = await self.attach(tenant_id, store_id, params["file_id"], attributes=params.get("attributes"), chunking_strategy=params.get("chunking_strategy"))
        await self._stores.touch(store_id, row)
        return attached

    async def row(self, tenant_id: str, store_id: str, file_id: str):
        row = await self._db.fetch_one(_GET, {"store_id": store_id, "file_id": file_id, "tenant_id": tenant_id})
        if row is None:
            raise not_found("VectorStoreFile", file_id, param="file_id")
        return row

    async def get(self, tenant_id: str, store_id: str, file_id: str) -> dict:
        await self._stores.row(tenant_id, store_id)
        return file_object(await self.row(tenant_id, store_id, file_id))

    async def list(self, tenant_id: str, store_id: str, page: Page, status: str | None, batch_id: str | None = None) -> dict:
        await self._stores.row(tenant_id, store_id)
        filters = {"tenant_id": tenant_id, "vector_store_id": store_id}
        if status:
            if status not in STATUSES:
                supported = ", ".join(f"'{s}'" for s in STATUSES)
                raise invalid_request(f"Invalid value: '{status}'. Supported values are: {supported}.", param="filter", code="invalid_value")
            filters["status"] = status
        if batch_id:
            filters["batch_id"] = batch_id
        rows, has_more = await fetch_page(self._db, store_files, page, filters)
        return list_body([file_object(row) for row in rows], has_more)

    async def update(self, tenant_id: str, store_id: str, file_id: str, attributes) -> dict:
        await self.row(tenant_id, store_id, file_id)
        async with self._db.begin() as conn:
            await conn.execute(
                update(store_files)
                .where(store_files.c.vector_store_id == store_id, store_files.c.id == file_id)
                .values(attributes=check_attributes(attributes))
            )
        return file_object(await self.row(tenant_id, store_id, file_id))

    async def delete(self, tenant_id: str, store_id: str, file_id: str) -> dict:
        row = await self.row(tenant_id, store_id, file_id)
        await self._links.unlink(store_id, file_id, row.usage_bytes)
        return {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}

    async def remove_chunks(self, store_id: str, file_id: str) -> int:
        return await self._links.remove_chunks(store_id, file_id)

    async def content(self, tenant_id: str, store_id: str, file_id: str) -> dict:
        await self.row(tenant_id, store_id, file_id)
        rows = await self._db.fetch_all(
            select(chunks.c.text).where(chunks.c.vector_store_id == store_id, chunks.c.file_id == file_id).order_by(chunks.c.position)
        )
        return {"object": "vector_store.file_content.page", "data": [{"type": "text", "text": r.text} for r in rows], "has_more": False, "next_page": None}
