"""The keyword half of hybrid search: BM25 over chunk text, scoped to one vector store.

SQLite keeps an external-content FTS5 table (`chunks_fts`, migration 0003): it does not follow the
`chunks` table by itself, so whoever writes chunk rows indexes and unindexes them *in the same
transaction* (`index_chunks` after inserting, `unindex_chunks` or `delete_chunks` before deleting; FTS5's
'delete' needs the exact text that was indexed, which is why it is read from the row before the row goes).
PostgreSQL's GIN index on `to_tsvector('simple', text)` follows the table: those calls are no-ops there.

Queries are user text, never FTS syntax: each whitespace-separated word becomes a quoted FTS5 phrase (so
`ZX-4471-Q` matches those three tokens in order and `NEAR`, `*`, `:` or quotes are plain words) and the
phrases are OR-ed; on PostgreSQL each word is a `plainto_tsquery('simple', …)` bound parameter, OR-ed
with `||`. Common English words are dropped (BM25 gives them almost no weight, and on a big table they
match nearly every row). On SQLite the query's distinctive words lead: a single-word term found in half
the rows or more is dropped (FTS5 gives it an idf of zero, yet scoring it would cost a pass over most of
the table), and so are words in more than 5% of the rows when the query also has rarer words or
identifiers (scoring costs a row per match: those common words are left to the vector half of hybrid
search, which finds them better anyway). Scores are BM25, higher is better: FTS5's own `bm25()` on SQLite (its
statistics span the whole table), and on PostgreSQL the same IDF formula computed within the store
(`Σ idf` over the query words a chunk contains; `ts_rank` only breaks ties — it has no IDF of its own).
"""
from __future__ import annotations

import json
import re
from typing import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import Database

MAX_TERMS = 32
_WORD = re.compile(r"\S+")
_HAS_TOKEN = re.compile(r"[^\W_]")  # a letter or digit: something unicode61 / the PG parser keeps
_TOKENS = re.compile(r"[^\W_]+")
_STOPWORDS = frozenset(
    "a an and are as at be but by can do does for from had has have how i if in into is it its me my no not "
    "of on or our so than that the their them then there these they this to was we were what when where "
    "which who why will with would you your".split()
)


def query_terms(query: str) -> list[str]:
    """The distinct words of a query worth matching (lowercased, outer punctuation kept as-is)."""
    words = []
    for word in _WORD.findall(query.lower()):
        if _HAS_TOKEN.search(word) and word not in words:
            words.append(word)
    useful = [w for w in words if w.strip(".,;:!?()[]{}\"'") not in _STOPWORDS]
    return (useful or words)[:MAX_TERMS]


def fts5_query(terms: Sequence[str]) -> str:
    """Each term as a quoted phrase (a quote inside is doubled), OR-ed: no FTS5 operator survives."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def seq_in(column: str, is_sqlite: bool) -> str:
    """`column` is one of the ids bound as `:ids` (any number of them; see `ids_value`)."""
    return f"{column} IN (SELECT value FROM json_each(:ids))" if is_sqlite else f"{column} = ANY(CAST(:ids AS BIGINT[]))"


def in_store_with_ids(is_sqlite: bool) -> str:
    """Chunks of `:store` among `:ids`, found by primary key: on SQLite the `+` keeps the planner from
    walking the whole store through ix_chunks_store_file instead (7 ms instead of 0.3 at 30k chunks)."""
    return ("+" if is_sqlite else "") + f"vector_store_id = :store AND {seq_in('seq', is_sqlite)}"


def ids_value(ids: Sequence[int], is_sqlite: bool):
    values = [int(i) for i in ids]
    return json.dumps(values) if is_sqlite else values


async def index_chunks(conn: AsyncConnection, rows: Sequence[tuple[int, str]]) -> None:
    """Add chunks (seq, text) to the keyword index; call in the transaction that inserted them."""
    if rows and conn.dialect.name == "sqlite":
        await conn.execute(text("INSERT INTO chunks_fts(rowid, text) VALUES (:seq, :text)"), [{"seq": int(s), "text": t} for s, t in rows])


async def unindex_chunks(conn: AsyncConnection, seqs: Sequence[int]) -> None:
    """Remove chunks from the keyword index; call in the transaction that deletes them, before the DELETE."""
    if seqs and conn.dialect.name == "sqlite":
        await conn.execute(
            text(f"INSERT INTO chunks_fts(chunks_fts, rowid, text) SELECT 'delete', seq, text FROM chunks WHERE {seq_in('seq', True)}"),
            {"ids": ids_value(seqs, True)},
        )


async def delete_chunks(conn: AsyncConnection, store_id: str, file_id: str | None = None) -> list[int]:
    """Delete a file's chunks (or a whole store's) with their keyword entries; returns their seqs, which
    the caller passes to `VectorIndex.remove` once this transaction has committed."""
    where = "vector_store_id = :store" + (" AND file_id = :file" if file_id is not None else "")
    params = {"store": store_id, "file": file_id}
    seqs = [row[0] for row in (await conn.execute(text(f"SELECT seq FROM chunks WHERE {where}"), params)).all()]
    if seqs:
        if conn.dialect.name == "sqlite":
            await conn.execute(text(f"INSERT INTO chunks_fts(chunks_fts, rowid, text) SELECT 'delete', seq, text FROM chunks WHERE {where}"), params)
        await conn.execute(text(f"DELETE FROM chunks WHERE {where}"), params)
    return seqs


async def keyword_search(db: Database, store_id: str, query: str, k: int, allowed_ids: Sequence[int] | None = None) -> list[tuple[int, float]]:
    """The store's chunks best matching the query's words: (seq, BM25 score > 0), best first.

    Runs on the async engine (a thread for SQLite): a query over common words scores many rows, which
    would hold the event loop if it ran on `fetch_all`'s on-loop SQLite reader."""
    terms = query_terms(query)
    if k <= 0 or not terms or (allowed_ids is not None and len(allowed_ids) == 0):
        return []
    params: dict = {"store": store_id, "k": int(k)}
    if allowed_ids is not None:
        params["ids"] = ids_value(allowed_ids, db.is_sqlite)
    async with db.connect() as conn:
        if db.is_sqlite:
            terms = await _informative(conn, terms)
            if not terms:
                return []
            sql = _sqlite_sql(allowed_ids is not None)
            params["q"] = fts5_query(terms)
        else:
            sql = _postgres_sql(len(terms), allowed_ids is not None)
            params.update({f"t{i}": term for i, term in enumerate(terms)})
        rows = (await conn.execute(text(sql), params)).all()
    return [(int(seq), float(score)) for seq, score in rows if score > 0]


async def _informative(conn: AsyncConnection, terms: list[str]) -> list[str]:
    """The terms worth scoring (see the module docstring). Document counts come from an fts5vocab table
    in this connection's temp schema (nothing in the database file); N is max(seq), an upper bound, so
    a word is only dropped when it is at least that common."""
    tokens = {term: _TOKENS.findall(term) for term in terms}
    if not conn.info.get("chunks_fts_terms"):  # once per pooled connection
        await conn.execute(text("CREATE VIRTUAL TABLE IF NOT EXISTS temp.chunks_fts_terms USING fts5vocab(main, 'chunks_fts', 'row')"))
        conn.info["chunks_fts_terms"] = True
    found = await conn.execute(
        text("SELECT term, doc, (SELECT max(seq) FROM chunks) FROM temp.chunks_fts_terms WHERE term IN (SELECT value FROM json_each(:t))"),
        {"t": json.dumps(sorted({token for parts in tokens.values() for token in parts}))},
    )
    share = {token: count / max(n or 0, 1) for token, count, n in found.all()}
    # A word's share of the rows; a phrase is as rare as its rarest word. Words in no row (or folded
    # differently by the tokenizer) are kept but lead nothing.
    rarest = {term: min((share[t] for t in parts if t in share), default=None) for term, parts in tokens.items()}
    kept = [term for term in terms if len(tokens[term]) > 1 or rarest[term] is None or rarest[term] < 0.5]
    leading = [term for term in kept if rarest[term] is not None and rarest[term] <= 0.05 and all(t in share for t in tokens[term])]
    return leading or kept


def _sqlite_sql(filtered: bool) -> str:
    # bm25() is negative, lower is better; the MATCH drives the join (chunks are found by rowid).
    return (
        "SELECT c.seq, -bm25(chunks_fts) AS score FROM chunks_fts JOIN chunks c ON c.seq = chunks_fts.rowid "
        "WHERE chunks_fts MATCH :q AND c.vector_store_id = :store"
        + (f" AND {seq_in('c.seq', True)}" if filtered else "")
        + " ORDER BY score DESC LIMIT :k"
    )


def _postgres_sql(n_terms: int, filtered: bool) -> str:
    """One statement: matching rows (through the GIN index), each word's document frequency among them,
    the store's row count, then Σ idf of the words a row contains (FTS5's idf formula) + ts_rank."""
    tsq = [f"plainto_tsquery('simple', :t{i})" for i in range(n_terms)]
    any_word = " || ".join(tsq)
    hits = ", ".join(f"(m.v @@ {q})::int AS h{i}" for i, q in enumerate(tsq))
    dfs = ", ".join(f"sum(h{i})::float8 AS d{i}" for i in range(n_terms))
    score = " + ".join(f"h.h{i} * greatest(ln((n.n - df.d{i} + 0.5) / (df.d{i} + 0.5)), 1e-6)" for i in range(n_terms))
    return (
        "WITH m AS (SELECT seq, to_tsvector('simple', text) AS v FROM chunks "
        f"WHERE vector_store_id = :store AND to_tsvector('simple', text) @@ ({any_word})"
        + (f" AND {seq_in('seq', False)}" if filtered else "")
        + f"), h AS (SELECT m.seq, ts_rank(m.v, {any_word}) AS r, {hits} FROM m), "
        f"df AS (SELECT {dfs} FROM h), n AS (SELECT count(*)::float8 AS n FROM chunks WHERE vector_store_id = :store) "
        f"SELECT h.seq, {score} + h.r AS score FROM h, df, n ORDER BY score DESC, h.seq LIMIT :k"
    )
