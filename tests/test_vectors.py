"""The vector index, keyword index and hybrid ranker over real SQLite and PostgreSQL databases and real
blob stores (the file system; S3 against `weed mini`): one contract, every backend."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import insert, text

from storage import vectors as vectors_module
from storage.blobs.fs import FileSystemBlobStore
from storage.db import Database
from storage.keywords import delete_chunks, index_chunks, keyword_search
from storage.models import Chunk
from storage.ranking import fuse, hybrid_search
from storage.vectors import VectorIndex
from tests.conftest import ROOT
from tests.test_blobs import _s3_store, s3_server  # noqa: F401  (fixtures)
from tests.test_db import pg_databases  # noqa: F401  (fixture)

pytestmark = pytest.mark.anyio
CHUNKS = Chunk.__table__


@pytest.fixture
def anyio_backend():
    return "asyncio"


@dataclass
class Env:
    db: Database
    blobs: object
    tmp: Path

    def index(self, **kwargs) -> VectorIndex:
        """A VectorIndex as another process would have it: its own cache and locks."""
        return VectorIndex(self.db, self.blobs, **kwargs)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), pytest.param("sqlite+s3", marks=pytest.mark.s3)])
def backend(request, tmp_path):
    """(database url, blob store): resolved outside the event loop (the PG fixture runs its own)."""
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_databases")()
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}"
    if request.param.endswith("s3"):
        return url, _s3_store(request.getfixturevalue("s3_server"))
    return url, FileSystemBlobStore(tmp_path / "blobs")


@pytest.fixture
async def env(backend, tmp_path):
    url, blobs = backend
    db = Database(url)
    await db.migrate()
    yield Env(db, blobs, tmp_path)
    await blobs.close()
    await db.dispose()


def unit(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float32)
    return m / np.linalg.norm(m, axis=-1, keepdims=True)


def embedding_like(n: int, dim: int, seed: int = 0, queries: int = 0):
    """Vectors with the shape of real embeddings: a low-dimensional, loosely clustered latent space
    projected up, plus noise. (Uniform random vectors have no meaningful neighbours at all.)"""
    rng = np.random.default_rng(seed)
    latent = max(8, dim // 4)
    projection = rng.standard_normal((latent, dim), dtype=np.float32)
    centres = rng.standard_normal((max(4, n // 100), latent), dtype=np.float32) * 0.5
    z = centres[rng.integers(0, len(centres), n)] + rng.standard_normal((n, latent), dtype=np.float32)
    x = unit(unit(z @ projection) + 0.5 * unit(rng.standard_normal((n, dim), dtype=np.float32)))
    if not queries:
        return x
    zq = z[rng.integers(0, n, queries)] + 0.4 * rng.standard_normal((queries, latent), dtype=np.float32)
    return x, unit(unit(zq @ projection) + 0.5 * unit(rng.standard_normal((queries, dim), dtype=np.float32)))


async def insert_chunks(db: Database, store: str, vectors: np.ndarray, texts: list[str] | None = None, file_id: str = "file-1") -> list[int]:
    """Chunk rows and their keyword entries, committed (as ingestion does before VectorIndex.add)."""
    texts = texts or [f"chunk {i} of {file_id}" for i in range(len(vectors))]
    seqs: list[int] = []
    async with db.begin() as conn:
        for start in range(0, len(vectors), 2000):
            rows = [
                {"vector_store_id": store, "file_id": file_id, "position": start + i, "text": texts[start + i], "tokens": 8, "vector": v.astype("<f4").tobytes()}
                for i, v in enumerate(vectors[start : start + 2000])
            ]
            result = await conn.execute(insert(CHUNKS).returning(CHUNKS.c.seq, sort_by_parameter_order=True), rows)
            seqs += [row[0] for row in result.all()]
        await index_chunks(conn, list(zip(seqs, texts)))
    return seqs


def exact_top(vectors: np.ndarray, seqs, query: np.ndarray, k: int, allowed=None) -> list[int]:
    seqs = np.asarray(seqs)
    scores = vectors @ query
    if allowed is not None:
        scores = np.where(np.isin(seqs, allowed), scores, -np.inf)
    return [int(s) for s in seqs[np.argsort(-scores, kind="stable")[:k]]]


async def blob_keys(env: Env, store: str) -> list[str]:
    if isinstance(env.blobs, FileSystemBlobStore):
        root = env.blobs.root / "indexes" / store
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []
    client = await env.blobs._ready()
    listed = client.list_objects(env.blobs.bucket, prefix=f"indexes/{store}/", recursive=True)
    return sorted(o.object_name.removeprefix(f"indexes/{store}/") for o in listed)


# --- vectors --------------------------------------------------------------------------------------


async def test_search_returns_the_exact_neighbours(env):
    x = embedding_like(400, 32)
    seqs = await insert_chunks(env.db, "vs_a", x)
    index = env.index()
    await index.add("vs_a", seqs, x)
    info = await index.describe("vs_a")
    assert (info.kind, info.count, info.dim) == ("exact", 400, 32)
    for q in x[:5]:
        hits = await index.search("vs_a", q, 10)
        assert [seq for seq, _ in hits] == exact_top(x, seqs, q, 10)
        assert hits[0][1] == pytest.approx(1.0, abs=1e-5)
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    assert await index.search("vs_a", x[0], 1000) and len(await index.search("vs_a", x[0], 1000)) == 400
    assert await index.search("vs_unknown", x[0], 10) == []
    with pytest.raises(ValueError):
        await index.search("vs_a", np.ones(8, np.float32), 3)


@pytest.mark.parametrize("kind", ["exact", "approximate"])
async def test_a_filter_is_applied_inside_the_search(env, kind):
    x = embedding_like(5000, 32, seed=1)
    seqs = await insert_chunks(env.db, "vs_f", x)
    index = env.index(exact_threshold=10**9 if kind == "exact" else 1000)
    await index.add("vs_f", seqs, x)
    assert (await index.describe("vs_f")).kind == kind
    rng = np.random.default_rng(7)
    allowed = [int(s) for s in rng.choice(seqs, 50, replace=False)]  # 1% of the store
    for q in x[rng.integers(0, 5000, 5)]:
        hits = await index.search("vs_f", q, 10, allowed_ids=allowed)
        # Over-fetching the unfiltered top 10 (or 100) and dropping would leave ~0 results here.
        assert [seq for seq, _ in hits] == exact_top(x, seqs, q, 10, allowed)
    assert await index.search("vs_f", x[0], 10, allowed_ids=[]) == []
    assert [s for s, _ in await index.search("vs_f", x[0], 10, allowed_ids=allowed[:3])] == exact_top(x, seqs, x[0], 3, allowed[:3])


@pytest.mark.parametrize("kind", ["exact", "approximate"])
async def test_remove_and_drop_leave_nothing(env, kind):
    x = embedding_like(2400, 32, seed=2)
    seqs = await insert_chunks(env.db, "vs_r", x[:1200], file_id="file-a") + await insert_chunks(env.db, "vs_r", x[1200:], file_id="file-b")
    index = env.index(exact_threshold=10**9 if kind == "exact" else 1000)
    await index.add("vs_r", seqs, x)
    async with env.db.begin() as conn:
        removed = await delete_chunks(conn, "vs_r", "file-a")
    assert sorted(removed) == sorted(seqs[:1200])
    await index.remove("vs_r", removed)
    await index.remove("vs_r", removed)  # idempotent
    left = set(seqs[1200:])
    for probe in (index, env.index(exact_threshold=10**9 if kind == "exact" else 1000)):
        assert (await probe.describe("vs_r")).count == 1200
        for q in x[:1200:300]:  # queries right on top of removed vectors
            hits = await probe.search("vs_r", q, 2400)  # IVF answers from the lists it probes
            assert hits and ({seq for seq, _ in hits} == left if kind == "exact" else {seq for seq, _ in hits} <= left)
        assert await probe.search("vs_r", x[0], 10, allowed_ids=removed) == []  # every list scanned: none left
    assert await blob_keys(env, "vs_r")

    async with env.db.begin() as conn:
        await delete_chunks(conn, "vs_r")
    await index.drop("vs_r")
    assert await blob_keys(env, "vs_r") == []
    assert not await env.blobs.exists("indexes/vs_r/HEAD")
    assert await index.search("vs_r", x[0], 10) == []
    assert await env.index().search("vs_r", x[0], 10) == []
    assert await index.describe("vs_r") is None


async def test_another_process_sees_the_latest_version(env):
    x = embedding_like(300, 16, seed=3)
    seqs = await insert_chunks(env.db, "vs_p", x[:100])
    a, b = env.index(), env.index()
    await a.add("vs_p", seqs, x[:100])
    assert {s for s, _ in await b.search("vs_p", x[0], 500)} == set(seqs)
    seqs += await insert_chunks(env.db, "vs_p", x[100:])
    await a.add("vs_p", seqs[100:], x[100:])  # b holds version N in memory; HEAD now says N+1
    assert {s for s, _ in await b.search("vs_p", x[0], 500)} == set(seqs)
    async with env.db.begin() as conn:
        await conn.execute(text("DELETE FROM chunks WHERE seq = :s"), {"s": seqs[5]})
    await b.remove("vs_p", [seqs[5]])
    assert seqs[5] not in {s for s, _ in await a.search("vs_p", x[5], 500)}
    assert (await a.describe("vs_p")).version == (await b.describe("vs_p")).version
    assert [s for s, _ in await env.index().search("vs_p", x[7], 3)] == exact_top(np.delete(x, 5, 0), seqs[:5] + seqs[6:], x[7], 3)


async def test_add_skips_ids_without_chunk_rows(env):
    x = embedding_like(20, 16, seed=4)
    seqs = await insert_chunks(env.db, "vs_o", x[:10])
    index = env.index()
    await index.add("vs_o", [*seqs, 999_999], np.vstack([x[:10], x[10:11]]))  # 999999: no such row
    await index.add("vs_x", seqs, x[:10])  # rows of another store
    assert (await index.describe("vs_o")).count == 10
    assert await index.describe("vs_x") is None


@pytest.mark.parametrize("damage", ["snapshot deleted", "snapshot corrupt", "delta corrupt", "HEAD deleted", "HEAD corrupt", "everything deleted"])
async def test_lost_or_corrupt_blobs_are_rebuilt_from_the_chunks(env, damage):
    x = embedding_like(500, 16, seed=5)
    seqs = await insert_chunks(env.db, "vs_l", x)
    writer = env.index()
    await writer.add("vs_l", seqs[:400], x[:400])
    await writer.add("vs_l", seqs[400:], x[400:])  # a delta on top of the snapshot
    keys = await blob_keys(env, "vs_l")
    snapshot = next(k for k in keys if "snapshot-" in k)
    delta = next(k for k in keys if "delta-" in k)
    key = lambda name: f"indexes/vs_l/{name}"  # noqa: E731
    match damage:
        case "snapshot deleted":
            await env.blobs.delete(key(snapshot))
        case "snapshot corrupt":
            blob = bytearray(await env.blobs.read_all(key(snapshot)))
            blob[len(blob) // 2] ^= 0xFF
            await env.blobs.put(key(snapshot), bytes(blob))
        case "delta corrupt":
            await env.blobs.put(key(delta), b"not a delta")
        case "HEAD deleted":
            await env.blobs.delete(key("HEAD"))
        case "HEAD corrupt":
            await env.blobs.put(key("HEAD"), b"{not json")
        case "everything deleted":
            await env.blobs.delete_prefix("indexes/vs_l")
    reader = env.index()
    for q in x[::100]:
        assert [s for s, _ in await reader.search("vs_l", q, 5)] == exact_top(x, seqs, q, 5)
    assert (await reader.describe("vs_l")).count == 500
    assert not set(await blob_keys(env, "vs_l")) & (set(keys) - {"HEAD"})  # a new epoch, the old one gone
    assert [s for s, _ in await writer.search("vs_l", x[3], 5)] == exact_top(x, seqs, x[3], 5)  # the writer follows


async def test_crossing_the_threshold_switches_to_approximate_with_high_recall(env):
    x, queries = embedding_like(30_000, 64, seed=6, queries=100)
    index = env.index()  # the default threshold: 20,000
    seqs = []
    for start in range(0, 30_000, 5000):
        seqs += await insert_chunks(env.db, "vs_big", x[start : start + 5000])
        await index.add("vs_big", seqs[start : start + 5000], x[start : start + 5000])
        expected = "exact" if start + 5000 < 20_000 else "approximate"
        assert (await index.describe("vs_big")).kind == expected
    recall = []
    for q in queries:
        hits = [s for s, _ in await index.search("vs_big", q, 10)]
        recall.append(len(set(hits) & set(exact_top(x, seqs, q, 10))) / 10)
    assert np.mean(recall) >= 0.95, np.mean(recall)
    other = env.index()
    assert (await other.describe("vs_big")).kind == "approximate"
    assert [s for s, _ in await other.search("vs_big", queries[0], 10)] == [s for s, _ in await index.search("vs_big", queries[0], 10)]


async def test_small_changes_are_deltas_folded_into_snapshots(env, monkeypatch):
    monkeypatch.setattr(vectors_module, "COMPACT_MIN_ROWS", 60)
    x = embedding_like(600, 16, seed=8)
    seqs = await insert_chunks(env.db, "vs_c", x[:100])
    writer, follower = env.index(), env.index()
    await writer.add("vs_c", seqs[:100], x[:100])
    assert await follower.search("vs_c", x[0], 1)
    for start in range(100, 600, 20):
        seqs += await insert_chunks(env.db, "vs_c", x[start : start + 20])
        await writer.add("vs_c", seqs[start : start + 20], x[start : start + 20])
        if start % 100 == 0:  # the follower catches up now and then: by deltas, or a newer snapshot
            assert {s for s, _ in await follower.search("vs_c", x[0], 1000)} == set(seqs[: start + 20])
    keys = await blob_keys(env, "vs_c")
    assert sum("snapshot-" in k for k in keys) == 1
    assert sum("delta-" in k for k in keys) < 25  # 25 changes, most already folded and deleted
    for probe in (follower, env.index()):
        assert {s for s, _ in await probe.search("vs_c", x[0], 1000)} == set(seqs)


async def test_concurrent_searches_and_changes_in_one_process(env):
    x = embedding_like(1200, 16, seed=9)
    seqs = await insert_chunks(env.db, "vs_cc", x)
    a, b = env.index(), env.index()
    await a.add("vs_cc", seqs[:200], x[:200])

    async def add(index, lo, hi):
        for start in range(lo, hi, 50):
            await index.add("vs_cc", seqs[start : start + 50], x[start : start + 50])

    async def search(index):
        for q in x[:40]:
            hits = await index.search("vs_cc", q, 5)
            assert len(hits) == 5 and all(s in seqs for s, _ in hits)

    await asyncio.gather(add(a, 200, 700), add(b, 700, 1200), search(a), search(b), search(env.index()))
    for probe in (a, b, env.index()):
        assert {s for s, _ in await probe.search("vs_cc", x[0], 2000)} == set(seqs)


_WORKER = textwrap.dedent(
    """
    import asyncio, sys
    import numpy as np
    from sqlalchemy import text
    from storage.blobs.fs import FileSystemBlobStore
    from storage.db import Database
    from storage.vectors import VectorIndex

    async def main(url, root, file_id):
        db = Database(url)
        rows = await db.fetch_all(text("SELECT seq, vector FROM chunks WHERE file_id = :f ORDER BY seq"), {"f": file_id})
        index = VectorIndex(db, FileSystemBlobStore(root))
        for start in range(0, len(rows), 25):
            batch = rows[start : start + 25]
            await index.add("vs_mp", [r[0] for r in batch], np.stack([np.frombuffer(r[1], "<f4") for r in batch]))
        await db.dispose()

    asyncio.run(main(*sys.argv[1:]))
    """
)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
async def test_writers_in_several_processes_lose_no_update(env):
    x = embedding_like(600, 16, seed=10)
    seqs = []
    for worker in range(4):
        seqs += await insert_chunks(env.db, "vs_mp", x[worker * 150 : (worker + 1) * 150], file_id=f"file-{worker}")
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, env.db.url, str(env.blobs.root), f"file-{worker}"], cwd=ROOT, stderr=subprocess.PIPE)
        for worker in range(4)
    ]
    for proc in procs:
        _, err = await asyncio.to_thread(proc.communicate, timeout=120)
        assert proc.returncode == 0, err.decode()
    index = env.index()
    assert (await index.describe("vs_mp")).count == 600
    assert {s for s, _ in await index.search("vs_mp", x[0], 1000)} == set(seqs)


# --- keywords and ranking ---------------------------------------------------------------------------

FILLER = [
    "The warranty status of each part is tracked in the service portal and updated weekly.",
    "Parts under warranty can be replaced at no cost; check the status before ordering.",
    "Our support team reviews warranty claims for every part within five business days.",
    "A part's warranty status changes to expired twelve months after installation.",
    "To check the status of a warranty claim, open the part record and read the claim history.",
    "Replacement parts inherit the remaining warranty of the part they replace.",
]


def corpus() -> list[str]:
    texts = [f"{FILLER[i % len(FILLER)]} Note {i}: see section {i % 7} of the manual." for i in range(60)]
    texts[37] = "Shipping manifest: pallet 12 carries ZX-4471-Q, received at dock B on Tuesday by the night crew."
    return texts


def offline_vectors(texts: list[str]) -> np.ndarray:
    from app.inference.providers.offline.embeddings import embed

    return unit(np.stack([embed(t, "text-embedding-3-small", 256) for t in texts]))


async def test_keyword_search_finds_a_rare_identifier(env):
    texts = corpus()
    seqs = await insert_chunks(env.db, "vs_k", np.ones((60, 4), np.float32), texts)
    await insert_chunks(env.db, "vs_other", np.ones((1, 4), np.float32), ["another tenant's ZX-4471-Q"])
    queries = ["What is the warranty status of part ZX-4471-Q?", "zx-4471-q", "ZX-4471"]
    if env.db.is_sqlite:  # PostgreSQL's parser reads "-4471" in "ZX-4471-Q" as a signed number
        queries.append("4471")
    for query in queries:
        hits = await keyword_search(env.db, "vs_k", query, 5)
        assert hits[0][0] == seqs[37], (query, hits)
        assert all(score > 0 for _, score in hits)
    assert await keyword_search(env.db, "vs_k", "ZX-4471-Q", 5, allowed_ids=seqs[:10]) == []
    assert [s for s, _ in await keyword_search(env.db, "vs_k", "ZX-4471-Q", 5, allowed_ids=[seqs[37]])] == [seqs[37]]
    assert await keyword_search(env.db, "vs_k", "ZX-4471-Q", 0) == []


NASTY_QUERIES = [
    '"', 'a"b', '" OR 1=1 --', "NEAR(warranty status, 2)", "warranty NEAR status", "*", "warr*", "text:warranty",
    "chunks_fts:status", "status:", "AND OR NOT", "(status", "status)", "^status", "-status", "+status", "{status}",
    "'; DROP TABLE chunks; --", "\\", "%_%", "", "   ", "?!.,", "ünïcödé 状态 статус", "a " * 500, "the of and", "_ __ -",
]


async def test_keyword_queries_cannot_inject_syntax(env):
    seqs = await insert_chunks(env.db, "vs_i", np.ones((60, 4), np.float32), corpus())
    for query in NASTY_QUERIES:
        hits = await keyword_search(env.db, "vs_i", query, 5)
        assert all(seq in seqs and score > 0 for seq, score in hits), query
    assert [s for s, _ in await keyword_search(env.db, "vs_i", 'ZX-4471-Q" OR "warranty', 5)][:1] == [seqs[37]]


async def test_deleted_chunks_leave_the_keyword_index(env):
    texts = corpus()
    await insert_chunks(env.db, "vs_d", np.ones((30, 4), np.float32), texts[:30], file_id="file-a")
    await insert_chunks(env.db, "vs_d", np.ones((30, 4), np.float32), texts[30:], file_id="file-b")
    assert await keyword_search(env.db, "vs_d", "ZX-4471-Q", 5)
    async with env.db.begin() as conn:
        assert len(await delete_chunks(conn, "vs_d", "file-b")) == 30
    assert await keyword_search(env.db, "vs_d", "ZX-4471-Q", 5) == []
    assert len(await keyword_search(env.db, "vs_d", "replacement", 100)) == sum("Replacement" in t for t in texts[:30])
    if env.db.is_sqlite:  # FTS5's own check that the index matches its content table
        async with env.db.begin() as conn:
            await conn.execute(text("INSERT INTO chunks_fts(chunks_fts, rank) VALUES('integrity-check', 0)"))


async def test_hybrid_ranking_puts_an_exact_identifier_in_the_top_three(env):
    texts = corpus()
    vectors = offline_vectors(texts)
    seqs = await insert_chunks(env.db, "vs_h", vectors, texts)
    index = env.index()
    await index.add("vs_h", seqs, vectors)
    query = "What is the warranty status of part ZX-4471-Q?"
    q = offline_vectors([query])[0]
    vector_only = await hybrid_search(index, env.db, "vs_h", q, query, 60, ranker="none")
    vector_rank = [s for s, _ in vector_only].index(seqs[37])
    assert vector_rank >= 10, "the identifier chunk should be a mediocre vector match for this test to mean anything"
    for ranker in ("auto", "default-2024-11-15"):
        hits = await hybrid_search(index, env.db, "vs_h", q, query, 5, ranker=ranker)
        assert seqs[37] in [s for s, _ in hits[:3]], hits
        assert all(0.0 <= score <= 1.0 for _, score in hits)
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    top_vector = vector_only[0][0]
    assert top_vector in [s for s, _ in await hybrid_search(index, env.db, "vs_h", q, query, 5)]  # on-topic chunks stay
    filtered = await hybrid_search(index, env.db, "vs_h", q, query, 5, allowed_ids=seqs[:30])
    assert filtered and all(s in seqs[:30] for s, _ in filtered)
    assert await hybrid_search(index, env.db, "vs_h", q, query, 5, score_threshold=1.0) == []


def test_fuse():
    vector = [(1, 0.9), (2, 0.5), (3, 0.2), (4, -0.3)]
    keyword = [(3, 12.0), (5, 1.0)]
    fused = fuse(vector, keyword, 10)
    assert [s for s, _ in fused][:2] == [3, 1]  # a strong keyword match lifts a weak vector match
    assert all(0.0 <= score <= 1.0 for _, score in fused)
    assert dict(fused)[4] == 0.0 and dict(fused)[5] == pytest.approx(1 - np.exp(-0.5))
    assert fuse(vector, keyword, 10, ranker="none") == [(1, 0.9), (2, 0.5), (3, 0.2), (4, 0.0)]
    assert [s for s, _ in fuse(vector, keyword, 10, text_weight=0.0)][:3] == [1, 2, 3]
    assert [s for s, _ in fuse(vector, keyword, 2, score_threshold=0.6)] == [3, 1]
    assert fuse([], [], 5) == []
    with pytest.raises(ValueError):
        fuse(vector, keyword, 5, ranker="bm42")
    with pytest.raises(ValueError):
        fuse(vector, keyword, 5, embedding_weight=0, text_weight=0)

