"""Vector-store ingestion and search, at 10k and 100k chunks of 1536 dimensions (text-embedding-3-small).

    .venv/bin/python scripts/bench_vectors.py [--chunks 100000] [--small 10000] [--dim 1536] [--queries 200]

Ingestion runs what the ingestion job runs per file of `--batch` chunks: one transaction inserting the
chunk rows and their keyword entries, then `VectorIndex.add` (delta + HEAD blobs, compactions, the
switch to IVF at 20k, its retraining at 80k). The embedding rate of the offline model is measured on a
sample beside it: ingestion is limited by embedding, not by our code. Texts: the first `--small` chunks
are ~600 words (an 800-token chunk), the rest ~60 words to keep the run short.

Search latency is one query at a time (p50/p90) and QPS with 4 concurrent clients, on the index as the
API would use it (HEAD check included). Vectors are not uniform noise (where "nearest" means nothing
and every ANN index fails) but shaped like embeddings: a loosely clustered 32-dimensional latent space
projected to 1536 dimensions plus noise; queries are perturbed documents. Recall@10 of the approximate
index is measured against exact search in the same run. Target: p50 < 10 ms at 100k, recall@10 >= 0.95.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
from sqlalchemy import insert, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from app.inference.providers.offline import OfflineProvider  # noqa: E402
from storage.blobs.fs import FileSystemBlobStore  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.keywords import index_chunks, keyword_search  # noqa: E402
from storage.models import Chunk  # noqa: E402
from storage.ranking import hybrid_search  # noqa: E402
from storage.vectors import VectorIndex  # noqa: E402

STORE = "vs_bench"
CHUNKS = Chunk.__table__


def unit(m: np.ndarray) -> np.ndarray:
    return (m / np.linalg.norm(m, axis=-1, keepdims=True)).astype(np.float32)


def embedding_like(n: int, dim: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    latent = 32
    projection = rng.standard_normal((latent, dim), dtype=np.float32)
    centres = rng.standard_normal((1000, latent), dtype=np.float32) * 0.5
    labels = rng.integers(0, len(centres), n)
    x = np.empty((n, dim), np.float32)
    z_all = np.empty((n, latent), np.float32)
    for start in range(0, n, 10_000):
        end = min(n, start + 10_000)
        z = centres[labels[start:end]] + rng.standard_normal((end - start, latent), dtype=np.float32)
        z_all[start:end] = z
        x[start:end] = unit(unit(z @ projection) + 0.5 * unit(rng.standard_normal((end - start, dim), dtype=np.float32)))
    zq = z_all[rng.integers(0, n, queries)] + 0.4 * rng.standard_normal((queries, latent), dtype=np.float32)
    return x, unit(unit(zq @ projection) + 0.5 * unit(rng.standard_normal((queries, dim), dtype=np.float32)))


class Texts:
    """Zipf-distributed pseudo-words, each chunk ending with its own part number (e.g. AB-000027-A)."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = np.random.default_rng(seed)
        letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
        self.words = np.array(["".join(self.rng.choice(letters, self.rng.integers(2, 10))) for _ in range(20_000)])
        ranks = np.arange(1, len(self.words) + 1)
        self.p = (1 / ranks) / (1 / ranks).sum()

    def make(self, count: int, words: int, offset: int) -> list[str]:
        drawn = self.rng.choice(self.words, size=(count, words), p=self.p)
        return [" ".join(row) + f" part {self.part(offset + i)}." for i, row in enumerate(drawn)]

    @staticmethod
    def part(n: int) -> str:
        letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        return f"{letters[n % 26]}{letters[n // 26 % 26]}-{n:06d}-{letters[n // 676 % 26]}"


async def ingest(db, index, x, texts: Texts, lo: int, hi: int, words: int, batch: int) -> dict:
    spent = {"rows": 0.0, "add": 0.0}
    started = time.perf_counter()
    for start in range(lo, hi, batch):
        end = min(hi, start + batch)
        chunk_texts = texts.make(end - start, words, start)
        t0 = time.perf_counter()
        async with db.begin() as conn:
            rows = [
                {"vector_store_id": STORE, "file_id": f"file-{start // batch}", "position": i, "text": t, "tokens": words * 4 // 3, "vector": v.tobytes()}
                for i, (t, v) in enumerate(zip(chunk_texts, x[start:end]))
            ]
            seqs = [r[0] for r in (await conn.execute(insert(CHUNKS).returning(CHUNKS.c.seq, sort_by_parameter_order=True), rows)).all()]
            await index_chunks(conn, list(zip(seqs, chunk_texts)))
        t1 = time.perf_counter()
        await index.add(STORE, seqs, x[start:end])
        spent["rows"] += t1 - t0
        spent["add"] += time.perf_counter() - t1
    total = time.perf_counter() - started
    n = hi - lo
    return {"chunks": n, "seconds": total, "rate": n / total, "rows_rate": n / spent["rows"], "add_rate": n / spent["add"]}


async def keyword_queries(db, texts: Texts, count: int) -> tuple[list[str], list[str]]:
    """Per random chunk, its part number with three of its content words (past the 100 commonest, as a
    real query past the stopword list), or with the three commonest words of the whole corpus."""
    rank = {word: r for r, word in enumerate(texts.words)}
    rows = await db.fetch_all(text("SELECT text FROM chunks WHERE vector_store_id = :s ORDER BY random() LIMIT :n"), {"s": STORE, "n": count})
    content, common = [], []
    for (body,) in rows:
        words, part = body.split()[:-1], body.split()[-1].rstrip(".")
        content.append(" ".join([w for w in dict.fromkeys(words) if rank.get(w, 0) > 100][:3] + [part]))
        common.append(" ".join([*texts.words[:3], part]))
    return content, common


async def embedding_rate(texts: list[str]) -> float:
    provider = OfflineProvider()
    started = time.perf_counter()
    for start in range(0, len(texts), 64):
        await provider.embeddings({"model": "text-embedding-3-small", "input": texts[start : start + 64]})
    return len(texts) / (time.perf_counter() - started)


async def latencies(run, queries: np.ndarray) -> dict:
    times = []
    for q in queries:
        t0 = time.perf_counter()
        await run(q)
        times.append(time.perf_counter() - t0)
    concurrent = 4
    t0 = time.perf_counter()

    async def client(part):
        for q in part:
            await run(q)

    await asyncio.gather(*(client(queries[i::concurrent]) for i in range(concurrent)))
    qps = len(queries) / (time.perf_counter() - t0)
    return {"p50": np.percentile(times, 50) * 1000, "p90": np.percentile(times, 90) * 1000, "qps1": len(times) / sum(times), "qps4": qps}


def recall_at_10(found: list[list[int]], x: np.ndarray, seqs: np.ndarray, queries: np.ndarray) -> float:
    truth = np.argsort(-(queries @ x.T), axis=1)[:, :10]
    return float(np.mean([len(set(f) & set(seqs[t].tolist())) / 10 for f, t in zip(found, truth)]))


def row(name: str, stats: dict, recall: float | None = None) -> None:
    extra = f"  recall@10 {recall:.3f}" if recall is not None else ""
    print(f"  {name:<34} p50 {stats['p50']:7.2f} ms  p90 {stats['p90']:7.2f} ms  QPS {stats['qps1']:7.0f} (1 client) {stats['qps4']:7.0f} (4){extra}")


async def main(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-vectors-"))
    db = Database(f"sqlite+aiosqlite:///{tmp / 'bench.db'}")
    await db.migrate()
    index = VectorIndex(db, FileSystemBlobStore(tmp / "blobs"))
    texts = Texts()
    try:
        print(f"vectors: {args.chunks:,} x {args.dim}, embedding-like; {args.queries} queries; data in {tmp}")
        t0 = time.perf_counter()
        x, queries = embedding_like(args.chunks, args.dim, args.queries)
        print(f"  generated in {time.perf_counter() - t0:.1f}s")
        embed = await embedding_rate(texts.make(args.embed_sample, 600, 0))
        print(f"\ningestion ({args.batch} chunks a file: rows + keyword entries in one transaction, then VectorIndex.add)")
        print(f"  offline embedding model (sample of {args.embed_sample} x ~800 tokens): {embed:8.0f} chunks/s")
        small = await ingest(db, index, x, texts, 0, args.small, 600, args.batch)
        print(f"  0 -> {args.small:,} (~800-token texts): {small['rate']:8.0f} chunks/s   (rows+FTS {small['rows_rate']:.0f}/s, index add {small['add_rate']:.0f}/s)")
        seqs = np.arange(1, args.chunks + 1)  # a fresh database numbers chunks 1..n in insertion order

        async def vector(q):
            return await index.search(STORE, q, 10)

        print(f"\nsearch at {args.small:,} chunks ({(await index.describe(STORE)).kind})")
        found = [[s for s, _ in await index.search(STORE, q, 10)] for q in queries]
        row("vector k=10", await latencies(vector, queries), recall_at_10(found, x[: args.small], seqs[: args.small], queries))

        big = await ingest(db, index, x, texts, args.small, args.chunks, 60, args.batch)
        print(f"\ningestion {args.small:,} -> {args.chunks:,} (~80-token texts; IVF switch and retrain included): {big['rate']:.0f} chunks/s "
              f"(rows+FTS {big['rows_rate']:.0f}/s, index add {big['add_rate']:.0f}/s)")
        info = await index.describe(STORE)
        print(f"\nsearch at {info.count:,} chunks ({info.kind}); process RSS {psutil.Process().memory_info().rss / 2**20:.0f} MiB")
        found = [[s for s, _ in await index.search(STORE, q, 10)] for q in queries]
        approx = await latencies(vector, queries)
        recall = recall_at_10(found, x, seqs, queries)
        row("vector k=10", approx, recall)
        allowed = np.random.default_rng(3).choice(seqs, args.chunks // 100, replace=False)
        row("vector k=10, filter keeping 1%", await latencies(lambda q: index.search(STORE, q, 10, allowed), queries[:50]))
        content, common = await keyword_queries(db, texts, 50)
        for name, words in (("keyword (bm25) k=10", content), ("keyword, the 3 commonest words + id", common)):
            row(name, await latencies(lambda w: keyword_search(db, STORE, w, 10), words))
        pairs = list(zip(queries[:50], content))
        row("hybrid (both + fusion) k=10", await latencies(lambda p: hybrid_search(index, db, STORE, p[0], p[1], 10), pairs))

        exact_index = VectorIndex(db, FileSystemBlobStore(tmp / "blobs-exact"), exact_threshold=10**9)
        t0 = time.perf_counter()
        await exact_index.describe(STORE)
        print(f"  (an exact index rebuilt from the chunk table in {time.perf_counter() - t0:.1f}s, for comparison)")
        row("vector k=10, exact", await latencies(lambda q: exact_index.search(STORE, q, 10), queries[:100]), 1.0)

        print("\ntargets")
        print(f"  search p50 < 10 ms at {info.count:,}: {approx['p50']:.2f} ms -> {'met' if approx['p50'] < 10 else 'MISSED'}")
        print(f"  recall@10 >= 0.95 at {info.count:,}:  {recall:.3f} -> {'met' if recall >= 0.95 else 'MISSED'}")
        print(f"  ingestion faster than embedding: {min(small['rate'], big['rate']):.0f} vs {embed:.0f} chunks/s -> "
              f"{'met' if min(small['rate'], big['rate']) > embed else 'MISSED'}")
    finally:
        await db.dispose()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=1536)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--batch", type=int, default=50, help="chunks per file (one transaction and one add each)")
    parser.add_argument("--embed-sample", type=int, default=128)
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    asyncio.run(main(parser.parse_args()))
