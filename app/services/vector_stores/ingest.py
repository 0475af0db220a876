"""Ingestion of one file into one vector store: extract, chunk, embed, store, index.

Resumable and idempotent: each attempt first removes whatever an earlier attempt left (chunk rows,
keyword entries, vectors), and the file turns `completed` only after its vectors are in the index, so
a crash at any point is repaired by running the job again. A file that cannot be parsed ends `failed`
with `last_error` and touches nothing else.
"""
from __future__ import annotations

import asyncio
import logging

from sqlalchemy import insert, select, update

from app.core.errors import APIError
from app.services.vector_stores.chunking import chunk_text
from app.services.vector_stores.embed import embed_texts
from app.services.vector_stores.extract import ExtractionError, extract_text
from storage.keywords import index_chunks
from storage.models import Chunk, VectorStore, VectorStoreFile

log = logging.getLogger("understudy.ingest")
chunks = Chunk.__table__
stores = VectorStore.__table__
store_files = VectorStoreFile.__table__


class Ingestor:
    def __init__(self, db, files, store_files_service, stores_service, index, inference) -> None:
        self._db = db
        self._files = files
        self._store_files = store_files_service
        self._stores = stores_service
        self._index = index
        self._inference = inference

    async def _fail(self, store_id: str, file_id: str, code: str, message: str) -> None:
        async with self._db.begin() as conn:
            await conn.execute(
                update(store_files)
                .where(store_files.c.vector_store_id == store_id, store_files.c.id == file_id, store_files.c.status == "in_progress")
                .values(status="failed", last_error={"code": code, "message": message})
            )

    async def ingest(self, store_id: str, file_id: str) -> None:
        where = (store_files.c.vector_store_id == store_id, store_files.c.id == file_id)
        row = await self._db.fetch_one(select(store_files).where(*where))
        if row is None or row.status != "in_progress":
            return  # detached, cancelled or already done
        store = await self._db.fetch_one(select(stores).where(stores.c.id == store_id))
        await self._store_files.remove_chunks(store_id, file_id)  # an earlier attempt's leftovers
        try:
            file_row = await self._files.get_row(row.tenant_id, file_id)
            data = await self._files.read_all(row.tenant_id, file_id)
            text = await asyncio.to_thread(extract_text, data, file_row.filename, file_row.mime_type)
            static = row.chunking_strategy["static"]
            pieces = await asyncio.to_thread(chunk_text, text, static["max_chunk_size_tokens"], static["chunk_overlap_tokens"])
            if not pieces:
                raise ExtractionError("invalid_file", "The file contains no text to index.")
            vectors = await embed_texts(self._inference, row.tenant_id, store.embedding_model, [p.text for p in pieces])
        except ExtractionError as error:
            await self._fail(store_id, file_id, error.code, error.message)
            return
        except APIError as error:  # the file vanished, or the embedding model refused or was busy
            # A rate limit (429) is the upstream's state, not the file's fault: `invalid_file` would blame the file.
            transient = error.status_code >= 500 or error.status_code == 429
            await self._fail(store_id, file_id, "server_error" if transient else "invalid_file", error.message)
            return
        async with self._db.begin() as conn:
            result = await conn.execute(
                insert(chunks).returning(chunks.c.seq, sort_by_parameter_order=True),
                [
                    {"vector_store_id": store_id, "file_id": file_id, "position": p.position, "text": p.text, "tokens": p.tokens, "vector": vectors[i].astype("<f4").tobytes()}
                    for i, p in enumerate(pieces)
                ],
            )
            seqs = [r[0] for r in result.all()]
            await index_chunks(conn, [(seq, p.text) for seq, p in zip(seqs, pieces)])
        await self._index.add(store_id, seqs, vectors)
        usage = sum(len(p.text.encode()) for p in pieces)
        async with self._db.begin() as conn:
            done = await conn.execute(update(store_files).where(*where, store_files.c.status == "in_progress").values(status="completed", usage_bytes=usage))
        if done.rowcount != 1:  # cancelled or detached meanwhile: leave nothing behind
            await self._store_files.remove_chunks(store_id, file_id)
            return
        await self._stores.add_usage(store_id, usage)
