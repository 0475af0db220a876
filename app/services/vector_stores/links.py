"""What vector stores and files share, without depending on each other: a store's row (looked up,
refused when expired, kept alive, its byte count), and a file's link to a store (its chunks, keyword
entries and vectors). VectorStoresService attaches files through VectorStoreFilesService; both, and
FilesService when a File is deleted, reach stores and links through these two small collaborators, so
no service is patched into another after construction."""
from __future__ import annotations

import time

from sqlalchemy import bindparam, delete, select, update

from app.core.errors import invalid_request, not_found
from storage.db import Database
from storage.keywords import delete_chunks
from storage.models import VectorStore, VectorStoreFile
from storage.prepared import Prepared
from storage.vectors import VectorIndex

stores = VectorStore.__table__
store_files = VectorStoreFile.__table__
DAY = 86_400
_GET = Prepared(select(stores).where(stores.c.id == bindparam("id"), stores.c.tenant_id == bindparam("tenant_id")))


class StoreRows:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def row(self, tenant_id: str, store_id: str):
        row = await self._db.fetch_one(_GET, {"id": store_id, "tenant_id": tenant_id})
        if row is None:
            raise not_found("VectorStore", store_id, param="vector_store_id")
        return row

    async def usable_row(self, tenant_id: str, store_id: str):
        """The store, refusing an expired one as OpenAI does for attachments and searches."""
        row = await self.row(tenant_id, store_id)
        if row.expires_at is not None and row.expires_at <= int(time.time()):
            raise invalid_request(f"Vector store {store_id} has expired.", param="vector_store_id", code="vector_store_expired")
        return row

    async def touch(self, store_id: str, row) -> None:
        """A search or attachment keeps an expiring store alive (`last_active_at` anchor)."""
        now = int(time.time())
        values = {"last_active_at": now}
        if row.expires_after:
            values["expires_at"] = now + row.expires_after["days"] * DAY
        async with self._db.begin() as conn:
            await conn.execute(update(stores).where(stores.c.id == store_id).values(**values))

    async def add_usage(self, store_id: str, delta: int) -> None:
        async with self._db.begin() as conn:
            await conn.execute(update(stores).where(stores.c.id == store_id).values(usage_bytes=stores.c.usage_bytes + delta))


class StoreFileLinks:
    def __init__(self, db: Database, index: VectorIndex, rows: StoreRows) -> None:
        self._db = db
        self._index = index
        self._rows = rows

    async def remove_chunks(self, store_id: str, file_id: str) -> int:
        """Every trace of a file in a store: chunk rows, keyword entries, vectors."""
        async with self._db.begin() as conn:
            seqs = await delete_chunks(conn, store_id, file_id)
        if seqs:  # after the commit: a crash in between leaves vectors the next attempt removes
            await self._index.remove(store_id, seqs)
        return len(seqs)

    async def unlink(self, store_id: str, file_id: str, usage_bytes: int) -> None:
        """Detaches the file from the store: its chunks and vectors, its link row, its `usage_bytes` in the
        store's usage (read by the caller with the link)."""
        await self.remove_chunks(store_id, file_id)
        async with self._db.begin() as conn:
            await conn.execute(delete(store_files).where(store_files.c.vector_store_id == store_id, store_files.c.id == file_id))
        if usage_bytes:
            await self._rows.add_usage(store_id, -usage_bytes)

    async def forget_file(self, tenant_id: str, file_id: str) -> None:
        """The File was deleted: detach it from every vector store of its tenant."""
        rows = await self._db.fetch_all(
            select(store_files.c.vector_store_id, store_files.c.usage_bytes).where(store_files.c.tenant_id == tenant_id, store_files.c.id == file_id)
        )
        for row in rows:
            await self.unlink(row.vector_store_id, file_id, row.usage_bytes)
