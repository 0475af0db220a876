"""Vector stores: create (with files), list, retrieve, update, delete, expiry.

A store's `status` and `file_counts` are derived from its files' rows on read (never stored twice);
`expires_after` counts days from `last_active_at`, which searches and attachments refresh.
"""
from __future__ import annotations

import time

from sqlalchemy import bindparam, delete, func, insert, select, update

from app.core.errors import invalid_request
from app.core.ids import new_id
from app.core.metadata import check_metadata
from app.core.pagination import Page, fetch_page, list_body
from app.services.vector_stores.files import VectorStoreFilesService
from app.services.vector_stores.links import DAY, StoreRows
from storage.db import Database
from storage.keywords import delete_chunks
from storage.models import VectorStore, VectorStoreFile, VectorStoreFileBatch
from storage.vectors import VectorIndex

stores = VectorStore.__table__
store_files = VectorStoreFile.__table__
batches = VectorStoreFileBatch.__table__
# Not Prepared: an expanding IN list is rendered per call by SQLAlchemy.
_COUNTS = (
    select(store_files.c.vector_store_id, store_files.c.status, func.count())
    .where(store_files.c.vector_store_id.in_(bindparam("ids", expanding=True)))
    .group_by(store_files.c.vector_store_id, store_files.c.status)
)


def check_expires_after(expires_after: dict | None) -> dict | None:
    if expires_after is None:
        return None
    if expires_after.get("anchor") != "last_active_at":
        raise invalid_request(
            f"Invalid value: '{expires_after.get('anchor')}'. Supported values are: 'last_active_at'.",
            param="expires_after.anchor", code="invalid_value",
        )
    days = expires_after.get("days")
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 365:
        raise invalid_request(
            f"Invalid 'expires_after.days': expected an integer between 1 and 365, got {days!r}.", param="expires_after.days", code="invalid_value"
        )
    return {"anchor": "last_active_at", "days": days}


def empty_counts() -> dict:
    return {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0, "total": 0}


def store_object(row, counts: dict, now: int) -> dict:
    if row.expires_at is not None and row.expires_at <= now:
        status = "expired"
    else:
        status = "in_progress" if counts["in_progress"] else "completed"
    body = {
        "id": row.id, "object": "vector_store", "created_at": row.created_at, "name": row.name or "",
        "usage_bytes": row.usage_bytes, "file_counts": counts, "status": status,
        "expires_at": row.expires_at, "last_active_at": row.last_active_at, "metadata": row.metadata or {},
    }
    if row.expires_after is not None:  # optional and not nullable in OpenAI's schema
        body["expires_after"] = row.expires_after
    return body


class VectorStoresService:
    def __init__(self, db: Database, index: VectorIndex, rows: StoreRows, files: VectorStoreFilesService, *, embedding_model: str) -> None:
        self._db = db
        self._index = index
        self._rows = rows
        self.files = files  # attaches the files a store is created with
        self.embedding_model = embedding_model

    async def _counts(self, store_ids: list[str]) -> dict[str, dict]:
        counts = {store_id: empty_counts() for store_id in store_ids}
        if store_ids:
            for store_id, status, n in await self._db.fetch_bounded(_COUNTS, {"ids": store_ids}):
                counts[store_id][status] = n
                counts[store_id]["total"] += n
        return counts

    async def row(self, tenant_id: str, store_id: str):
        return await self._rows.row(tenant_id, store_id)

    async def get(self, tenant_id: str, store_id: str) -> dict:
        row = await self.row(tenant_id, store_id)
        return store_object(row, (await self._counts([store_id]))[store_id], int(time.time()))

    async def create(self, tenant_id: str, params: dict) -> dict:
        expires_after = check_expires_after(params.get("expires_after"))
        metadata = check_metadata(params.get("metadata"))
        file_ids = list(params.get("file_ids") or [])
        if len(file_ids) > 500:
            raise invalid_request("Invalid 'file_ids': at most 500 files per request.", param="file_ids", code="array_above_max_length")
        strategy = params.get("chunking_strategy")
        if strategy is not None and not file_ids:
            raise invalid_request("'chunking_strategy' is only applicable if 'file_ids' is non-empty.", param="chunking_strategy")
        await self.files.check_attachable(tenant_id, file_ids, strategy)
        now = int(time.time())
        store_id = new_id("vs_")
        async with self._db.begin() as conn:
            await conn.execute(
                insert(stores).values(
                    id=store_id, tenant_id=tenant_id, created_at=now, name=params.get("name"), status="completed", usage_bytes=0,
                    last_active_at=now, expires_after=expires_after, expires_at=now + expires_after["days"] * DAY if expires_after else None,
                    metadata=metadata, embedding_model=params.get("embedding_model") or self.embedding_model,
                )
            )
        for file_id in file_ids:
            await self.files.attach(tenant_id, store_id, file_id, attributes=None, chunking_strategy=strategy)
        return await self.get(tenant_id, store_id)

    async def list(self, tenant_id: str, page: Page) -> dict:
        rows, has_more = await fetch_page(self._db, stores, page, {"tenant_id": tenant_id})
        counts = await self._counts([row.id for row in rows])
        now = int(time.time())
        return list_body([store_object(row, counts[row.id], now) for row in rows], has_more)

    async def update(self, tenant_id: str, store_id: str, params: dict) -> dict:
        row = await self.row(tenant_id, store_id)
        values: dict = {}
        if "name" in params:
            values["name"] = params["name"]
        if "metadata" in params:
            values["metadata"] = check_metadata(params["metadata"])
        if "expires_after" in params:
            expires_after = check_expires_after(params["expires_after"])
            values["expires_after"] = expires_after
            values["expires_at"] = (row.last_active_at or row.created_at) + expires_after["days"] * DAY if expires_after else None
        if values:
            async with self._db.begin() as conn:
                await conn.execute(update(stores).where(stores.c.id == store_id).values(**values))
        return await self.get(tenant_id, store_id)

    async def delete(self, tenant_id: str, store_id: str) -> dict:
        await self.row(tenant_id, store_id)
        async with self._db.begin() as conn:
            await delete_chunks(conn, store_id)
            await conn.execute(delete(store_files).where(store_files.c.vector_store_id == store_id))
            await conn.execute(delete(batches).where(batches.c.vector_store_id == store_id))
            await conn.execute(delete(stores).where(stores.c.id == store_id))
        await self._index.drop(store_id)
        return {"id": store_id, "object": "vector_store.deleted", "deleted": True}
