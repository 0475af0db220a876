"""Hybrid ranking: the vector score and the keyword (BM25) score fused into one relevance in [0, 1].

The ranker (`auto` and `default-2024-11-15` are the same; `auto` means "the latest"):

    v  = clamp(cosine similarity, 0, 1)                  vector evidence, already on an absolute scale
    kw = 1 - exp(-bm25 / 2)                              keyword evidence: one rare word ≈ 0.8-1,
                                                         a few common words ≈ 0.3-0.6, nothing = 0
    score = 1 - (1 - we·v) · (1 - wt·kw)                 a noisy-OR: either signal alone can carry a
                                                         result, both together reinforce it

`we`, `wt` are OpenAI's `hybrid_search.embedding_weight` / `text_weight`, scaled so the larger is 1
(default 1 and 1). The score is monotone in both signals, absolute (a query matching nothing scores
near 0, so `score_threshold` means something), and a chunk holding a rare exact identifier from the
query scores ≥ ~0.8 even when its cosine is mediocre, above chunks that are merely on-topic.

OpenAI documents its hybrid weights as reciprocal-rank-fusion weights; we deliberately fuse scores, not
ranks: RRF gives the best keyword hit the same credit whether it matched a part number or the word
"status", and any chunk that sits in both top lists outranks it, which buries exact identifiers.

`none` turns fusion off: vector similarity alone (the clamped cosine), no keyword query — the cheapest.
"""
from __future__ import annotations

import asyncio
import math
from typing import Sequence

import numpy as np
from sqlalchemy import text

from storage.db import Database
from storage.keywords import ids_value, in_store_with_ids, keyword_search

RANKERS = ("auto", "default-2024-11-15", "none")
KEYWORD_SCALE = 2.0  # the BM25 at which keyword evidence reaches 1 - 1/e
MIN_DEPTH = 20  # candidates fetched from each half, at least; more for larger k


def _weights(embedding_weight: float, text_weight: float) -> tuple[float, float]:
    if embedding_weight < 0 or text_weight < 0 or embedding_weight + text_weight <= 0:
        raise ValueError("hybrid weights must be non-negative and not both zero")
    top = max(embedding_weight, text_weight)
    return embedding_weight / top, text_weight / top


def keyword_evidence(bm25: float) -> float:
    return 1.0 - math.exp(-max(bm25, 0.0) / KEYWORD_SCALE)


def fuse(
    vector_hits: Sequence[tuple[int, float]],
    keyword_hits: Sequence[tuple[int, float]],
    k: int,
    *,
    ranker: str = "auto",
    score_threshold: float = 0.0,
    embedding_weight: float = 1.0,
    text_weight: float = 1.0,
) -> list[tuple[int, float]]:
    """(chunk seq, score in [0, 1]) best first, at most k, none below `score_threshold`.

    `vector_hits` are (seq, cosine); `keyword_hits` (seq, bm25). A chunk missing from `vector_hits`
    counts as cosine 0, so pass its real similarity when you have it (`hybrid_search` does)."""
    if ranker not in RANKERS:
        raise ValueError(f"unknown ranker {ranker!r}; expected one of {', '.join(RANKERS)}")
    cosine = {int(seq): min(max(float(s), 0.0), 1.0) for seq, s in vector_hits}
    if ranker == "none":
        scored = cosine
    else:
        we, wt = _weights(embedding_weight, text_weight)
        keyword = {int(seq): keyword_evidence(float(s)) for seq, s in keyword_hits}
        scored = {
            seq: 1.0 - (1.0 - we * cosine.get(seq, 0.0)) * (1.0 - wt * keyword.get(seq, 0.0))
            for seq in cosine.keys() | keyword.keys()
        }
    ranked = sorted(scored.items(), key=lambda item: (-item[1], -cosine.get(item[0], 0.0), item[0]))
    return [(seq, score) for seq, score in ranked if score >= score_threshold][: max(k, 0)]


async def hybrid_search(
    index,
    db: Database,
    store_id: str,
    query_vector: np.ndarray,
    query_text: str,
    k: int,
    *,
    allowed_ids: Sequence[int] | None = None,
    ranker: str = "auto",
    score_threshold: float = 0.0,
    embedding_weight: float = 1.0,
    text_weight: float = 1.0,
) -> list[tuple[int, float]]:
    """Both halves of the search, side by side, fused: what a vector store search or file_search runs.

    Each half returns its best `max(2k, 20)` candidates; keyword-only candidates then get their exact
    cosine from their chunk rows (a few primary-key reads), so a chunk found by its words is not scored
    as if it had no vector."""
    if ranker not in RANKERS:
        raise ValueError(f"unknown ranker {ranker!r}; expected one of {', '.join(RANKERS)}")
    if k <= 0:
        return []
    depth = max(2 * k, MIN_DEPTH)
    keyword_hits: list[tuple[int, float]] = []
    if ranker == "none" or text_weight <= 0:
        vector_hits = await index.search(store_id, query_vector, depth, allowed_ids)
    else:
        vector_hits, keyword_hits = await asyncio.gather(
            index.search(store_id, query_vector, depth, allowed_ids), keyword_search(db, store_id, query_text, depth, allowed_ids)
        )
        seen = {seq for seq, _ in vector_hits}
        missing = [seq for seq, _ in keyword_hits if seq not in seen]
        if missing:
            vector_hits = [*vector_hits, *await _cosines(db, store_id, missing, query_vector)]
    return fuse(
        vector_hits, keyword_hits, k, ranker=ranker, score_threshold=score_threshold,
        embedding_weight=embedding_weight, text_weight=text_weight,
    )


async def _cosines(db: Database, store_id: str, seqs: list[int], query_vector: np.ndarray) -> list[tuple[int, float]]:
    query = np.asarray(query_vector, dtype=np.float32).reshape(-1)
    sql = f"SELECT seq, vector FROM chunks WHERE {in_store_with_ids(db.is_sqlite)}"
    rows = await db.fetch_all(text(sql), {"store": store_id, "ids": ids_value(seqs, db.is_sqlite)})
    return [(int(seq), float(np.frombuffer(vector, dtype="<f4") @ query)) for seq, vector in rows if len(vector) == 4 * len(query)]
