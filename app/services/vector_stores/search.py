"""`POST /v1/vector_stores/{id}/search`: hybrid retrieval.

The query is embedded with the store's model and searched in the store's faiss index; the same query
is searched in the keyword index (bm25); the two scores are fused (storage/ranking.py documents the
ranker). Attribute
filters are evaluated on the store's files first and handed to both searches as the set of chunk ids
they may return, so a selective filter still yields `max_num_results` hits.
"""
from __future__ import annotations

from sqlalchemy import select

from app.core.errors import invalid_request
from app.inference.providers.offline.text import keywords
from app.services.vector_stores.embed import embed_texts
from app.services.vector_stores.filters import check_filter, matches
from storage.models import Chunk, File, VectorStoreFile
from storage.ranking import hybrid_search

chunks = Chunk.__table__
store_files = VectorStoreFile.__table__
files = File.__table__
RANKERS = ("none", "auto", "default-2024-11-15")


def _queries(query) -> list[str]:
    queries = [query] if isinstance(query, str) else list(query or [])
    if not queries or not all(isinstance(q, str) and q.strip() for q in queries):
        raise invalid_request("Invalid 'query': a non-empty string or array of strings.", param="query", code="invalid_value")
    return queries


class SearchService:
    def __init__(self, db, stores_service, index, inference) -> None:
        self._db = db
        self._stores = stores_service
        self._index = index
        self._inference = inference

    async def _allowed_chunks(self, store_id: str, filters: dict | None) -> list[int] | None:
        if filters is None:
            return None
        rows = await self._db.fetch_all(
            select(store_files.c.id, store_files.c.attributes).where(store_files.c.vector_store_id == store_id, store_files.c.status == "completed")
        )
        file_ids = [r.id for r in rows if matches(filters, r.attributes)]
        if not file_ids:
            return []
        seqs = await self._db.fetch_all(select(chunks.c.seq).where(chunks.c.vector_store_id == store_id, chunks.c.file_id.in_(file_ids)))
        return [r.seq for r in seqs]

    async def search(self, tenant_id: str, store_id: str, params: dict) -> dict:
        store = await self._stores.usable_row(tenant_id, store_id)
        queries = _queries(params.get("query"))
        limit = params.get("max_num_results", 10)
        if not 1 <= limit <= 50:
            raise invalid_request(f"Invalid 'max_num_results': expected 1 to 50, got {limit}.", param="max_num_results", code="integer_out_of_range")
        options = params.get("ranking_options") or {}
        ranker = options.get("ranker", "auto")
        threshold = options.get("score_threshold", 0.0)
        if not 0 <= threshold <= 1:
            raise invalid_request("Invalid 'ranking_options.score_threshold': between 0 and 1.", param="ranking_options.score_threshold", code="invalid_value")
        filters = check_filter(params["filters"]) if params.get("filters") is not None else None
        if params.get("rewrite_query"):
            queries = [" ".join(keywords(q, limit=12)) or q for q in queries]
        text = " ".join(queries)
        allowed = await self._allowed_chunks(store_id, filters)
        await self._stores.touch(store_id, store)
        if allowed == []:
            return _page(queries, [])
        vector = (await embed_texts(self._inference, tenant_id, store.embedding_model, [text]))[0]
        fused = await hybrid_search(
            self._index, self._db, store_id, vector, text, limit, allowed_ids=allowed, ranker=ranker, score_threshold=threshold
        )
        return _page(queries, await self._results(store_id, fused))

    async def _results(self, store_id: str, fused: list[tuple[int, float]]) -> list[dict]:
        if not fused:
            return []
        seqs = [seq for seq, _ in fused]
        rows = await self._db.fetch_all(
            select(chunks.c.seq, chunks.c.file_id, chunks.c.text, files.c.filename, store_files.c.attributes)
            .join(files, files.c.id == chunks.c.file_id)
            .join(store_files, (store_files.c.id == chunks.c.file_id) & (store_files.c.vector_store_id == chunks.c.vector_store_id))
            .where(chunks.c.vector_store_id == store_id, chunks.c.seq.in_(seqs))
        )
        by_seq = {r.seq: r for r in rows}
        return [
            {
                "file_id": by_seq[seq].file_id, "filename": by_seq[seq].filename, "score": round(float(score), 6),
                "attributes": by_seq[seq].attributes or {}, "content": [{"type": "text", "text": by_seq[seq].text}],
            }
            for seq, score in fused
            if seq in by_seq  # a chunk deleted between the index hit and now is skipped
        ]


def _page(queries: list[str], results: list[dict]) -> dict:
    return {"object": "vector_store.search_results.page", "search_query": queries, "data": results, "has_more": False, "next_page": None}
