"""File batches: many files attached at once, tracked together, cancellable together.

A batch's counts and status come from its files' rows; only the cancellation is recorded on the batch.
"""
from __future__ import annotations

import time

from sqlalchemy import bindparam, func, insert, select, update

from app.core.errors import invalid_request, not_found
from app.core.ids import new_id
from app.core.pagination import Page
from storage.db import Database
from storage.models import VectorStoreFile, VectorStoreFileBatch
from storage.prepared import Prepared

batches = VectorStoreFileBatch.__table__
store_files = VectorStoreFile.__table__
_GET = Prepared(
    select(batches).where(batches.c.id == bindparam("id"), batches.c.vector_store_id == bindparam("store_id"), batches.c.tenant_id == bindparam("tenant_id"))
)
_COUNTS = Prepared(select(store_files.c.status, func.count()).where(store_files.c.batch_id == bindparam("batch_id")).group_by(store_files.c.status))


class FileBatchesService:
    def __init__(self, db: Database, stores, files) -> None:
        self._db = db
        self._stores = stores
        self._files = files

    async def create(self, tenant_id: str, store_id: str, params: dict) -> dict:
        row = await self._stores.usable_row(tenant_id, store_id)
        file_ids, files = params.get("file_ids"), params.get("files")
        if (file_ids is None) == (files is None):
            raise invalid_request("Provide exactly one of 'file_ids' or 'files'.", param="file_ids")
        if files is None:
            entries = [{"file_id": f, "attributes": params.get("attributes"), "chunking_strategy": params.get("chunking_strategy")} for f in file_ids]
        else:
            if params.get("attributes") is not None or params.get("chunking_strategy") is not None:
                raise invalid_request("With 'files', give attributes and chunking_strategy per file.", param="files")
            entries = [{"attributes": None, "chunking_strategy": None, **dict(f)} for f in files]
        if not 1 <= len(entries) <= 2000:
            raise invalid_request("A batch holds between 1 and 2000 files.", param="file_ids", code="invalid_value")
        for entry in entries:  # every file checked before anything is attached
            await self._files.check_attachable(tenant_id, [entry["file_id"]], entry["chunking_strategy"])
        batch_id = new_id("vsfb_")
        async with self._db.begin() as conn:
            await conn.execute(
                insert(batches).values(id=batch_id, vector_store_id=store_id, tenant_id=tenant_id, created_at=int(time.time()), status="in_progress")
            )
        for entry in entries:
            await self._files.attach(
                tenant_id, store_id, entry["file_id"], attributes=entry["attributes"], chunking_strategy=entry["chunking_strategy"], batch_id=batch_id
            )
        await self._stores.touch(store_id, row)
        return await self.get(tenant_id, store_id, batch_id)

    async def _row(self, tenant_id: str, store_id: str, batch_id: str):
        row = await self._db.fetch_one(_GET, {"id": batch_id, "store_id": store_id, "tenant_id": tenant_id})
        if row is None:
            raise not_found("VectorStoreFileBatch", batch_id, param="batch_id")
        return row

    async def get(self, tenant_id: str, store_id: str, batch_id: str) -> dict:
        row = await self._row(tenant_id, store_id, batch_id)
        counts = {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0, "total": 0}
        for status, n in await self._db.fetch_bounded(_COUNTS, {"batch_id": batch_id}):
            counts[status] = n
            counts["total"] += n
        if row.status == "cancelled":
            status = "cancelled"
        elif counts["in_progress"]:
            status = "in_progress"
        else:
            status = "failed" if counts["total"] and counts["failed"] == counts["total"] else "completed"
        return {
            "id": batch_id, "object": "vector_store.files_batch", "created_at": row.created_at, "vector_store_id": store_id,
            "status": status, "file_counts": counts,
        }

    async def cancel(self, tenant_id: str, store_id: str, batch_id: str) -> dict:
        batch = await self.get(tenant_id, store_id, batch_id)
        if batch["status"] not in ("in_progress",):
            raise invalid_request(f"Batch {batch_id} is already {batch['status']}.", param="batch_id", code="batch_not_in_progress")
        async with self._db.begin() as conn:
            await conn.execute(update(batches).where(batches.c.id == batch_id).values(status="cancelled"))
            # Files not ingested yet are cancelled; an ingestion already under way finishes or notices.
            await conn.execute(
                update(store_files).where(store_files.c.batch_id == batch_id, store_files.c.status == "in_progress").values(status="cancelled")
            )
        return await self.get(tenant_id, store_id, batch_id)

    async def list_files(self, tenant_id: str, store_id: str, batch_id: str, page: Page, status: str | None) -> dict:
        await self._row(tenant_id, store_id, batch_id)
        return await self._files.list(tenant_id, store_id, page, status, batch_id=batch_id)
