"""One faiss index per vector store, shared by every process through the blob store.

- The chunk table is the truth (each chunk keeps its float32 vector); an index is a cache of it, rebuilt
  from those rows when its blobs are lost or corrupt, when a store crosses `exact_threshold` (either
  way), or when an IVF index has grown or shrunk 4x from the size it was trained at.
- Exact search (IndexIDMap2 over IndexFlatIP) below the threshold; above it IVF (inner product, nlist
  ≈ 4√n, a quarter of the lists probed) storing vectors as float16: half the memory and the memory traffic of
  float32 (a scan is bandwidth-bound), the same recall. IVF rather than HNSW: it really removes ids (HNSW
  cannot: tombstones plus SQLite's reuse of the highest rowid would hide or resurrect vectors), it
  builds in seconds where HNSW takes minutes at 100k×1536 on a small machine, and a filter stays exact:
  `allowed_ids` is an IDSelector inside the scan and nprobe grows as 1/selectivity, up to every list,
  so a 1% filter still yields k results. HNSW would search faster at equal recall; IVF meets the target
  (scripts/bench_vectors.py).
- Persistence is a log: `indexes/<store>/HEAD` (small JSON: epoch, version, base) names a snapshot
  `<epoch>/snapshot-<base>.faiss` plus the deltas `<epoch>/delta-<v>.npz` (ids and vectors added, ids
  removed) written after it. A change writes one small delta and bumps HEAD; once the deltas add up to
  half the snapshot, the writer folds them into a new snapshot (rewriting a 600 MB index for every
  ingested file would be quadratic). Blobs carry a checksum. Each rebuild starts a new epoch.
- Every search reads HEAD (one tiny blob): a process that is behind replays the deltas it lacks, or
  loads the newer snapshot. That is the version check that lets every API process and worker search
  the latest index, with nothing added to the database schema.
- Writers of one store take turns across processes (a PostgreSQL advisory lock; on SQLite an flock on
  a file beside the database). Adds and removes are idempotent and `add` keeps only ids whose chunk
  rows exist, so with "commit chunk rows, then add; delete rows, then remove (or drop)" no vector is
  orphaned even when a rebuild or a deletion races an ingestion.
"""
from __future__ import annotations

import asyncio
import fcntl
import hashlib
import io
import json
import logging
import math
import secrets
import time
import weakref
import zipfile
import zlib
from collections import OrderedDict
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import faiss
import numpy as np
from sqlalchemy import make_url, text

from storage.blobs.base import BlobNotFound, BlobStore
from storage.db import Database
from storage.keywords import ids_value, in_store_with_ids

log = logging.getLogger("understudy.vectors")

PROBE_FRACTION = 0.25  # share of IVF lists scanned per query: recall@10 ≥ 0.95 from 20k to 100k in the bench
MIN_NPROBE = 16
COMPACT_MIN_ROWS = 4096  # fold deltas into a snapshot past max(this, half the snapshot's rows)
MAX_DELTAS = 256
_LOCK_NAMESPACE = 0x7643  # first key of pg_advisory_xact_lock(int, int): ours alone
_WRITE_SLICE = 8 * 1024 * 1024
_CORRUPT: dict = {}
_NO_IDS = np.empty(0, dtype=np.int64)


class IndexCorrupt(Exception):
    """A blob that fails its checksum or does not parse."""


@dataclass(frozen=True)
class IndexInfo:
    kind: str  # "exact" | "approximate"
    count: int
    dim: int
    version: int


class _RWLock:
    """Searches share a store's index; a change waits for them (faiss must not be mutated mid-search)."""

    def __init__(self) -> None:
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._waiters: list[asyncio.Future] = []

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def _wait(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    @asynccontextmanager
    async def read(self):
        while self._writer or self._writers_waiting:
            await self._wait()
        self._readers += 1
        try:
            yield
        finally:
            self._readers -= 1
            self._wake()

    @asynccontextmanager
    async def write(self):
        self._writers_waiting += 1
        try:
            while self._writer or self._readers:
                await self._wait()
        finally:
            self._writers_waiting -= 1
            self._wake()
        self._writer = True
        try:
            yield
        finally:
            self._writer = False
            self._wake()


class _Entry:
    def __init__(self) -> None:
        self.index: faiss.Index | None = None
        self.head: dict | None = None  # the HEAD this index is at (ahead of the published one mid-change)
        self.lock = _RWLock()


class VectorIndex:
    def __init__(self, db: Database, blobs: BlobStore, *, exact_threshold: int = 20_000, cache_size: int = 64) -> None:
        self.db, self.blobs = db, blobs
        self.exact_threshold = exact_threshold
        self.cache_size = cache_size
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._local_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        database = make_url(db.url).database if db.is_sqlite else None
        self._lock_dir = Path(database + ".vector-locks") if database and database != ":memory:" else None

    # --- the API ------------------------------------------------------------------------------------

    async def add(self, store_id: str, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Index chunks: ids are chunk seqs whose rows are committed, vectors L2-normalised. Idempotent.

        The rows are the truth: an index built from scratch (a store's first add, a rebuild) takes every
        committed row of the store, so a chunk is searchable from its commit on, at the latest once its
        `add` has run."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(ids):
            raise ValueError("vectors must be an (n, d) array with one row per id")
        if not len(ids):
            return
        async with self._writing(store_id):
            ids, vectors = await self._with_rows(store_id, ids, vectors)
            if not len(ids):
                return
            entry = await self._fresh(store_id, locked=True)  # a new store's is built from its rows, these included
            if entry is None:  # its rows were deleted meanwhile
                return
            if vectors.shape[1] != entry.index.d:
                raise ValueError(f"vectors have {vectors.shape[1]} dimensions; this store's have {entry.index.d}")
            await self._change(store_id, entry, ids, vectors, _NO_IDS)

    async def remove(self, store_id: str, ids: Sequence[int]) -> None:
        """Forget chunks (after their rows were deleted). Idempotent."""
        ids = np.unique(np.asarray(ids, dtype=np.int64).reshape(-1))
        if not len(ids):
            return
        async with self._writing(store_id):
            entry = await self._fresh(store_id, locked=True)
            if entry is not None:
                await self._change(store_id, entry, _NO_IDS, np.empty((0, entry.index.d), np.float32), ids)

    async def drop(self, store_id: str) -> None:
        """Delete the store's index and every blob of it (after its chunk rows were deleted)."""
        async with self._writing(store_id):
            self._forget(store_id)
            await self.blobs.delete(_key(store_id, "HEAD"))
            await self.blobs.delete_prefix(f"indexes/{store_id}")

    async def rebuild(self, store_id: str) -> None:
        """Rebuild from the chunk rows now (e.g. a resumed ingestion whose `add` may never have run)."""
        async with self._writing(store_id):
            head = await self._read_head(store_id)
            await self._rebuild(store_id, head if head and head is not _CORRUPT else None)

    async def search(self, store_id: str, query: np.ndarray, k: int, allowed_ids: Sequence[int] | None = None) -> list[tuple[int, float]]:
        """(chunk seq, inner product) best first; `allowed_ids` restricts the scan itself."""
        if k <= 0 or (allowed_ids is not None and len(allowed_ids) == 0):
            return []
        allowed = None if allowed_ids is None else np.unique(np.asarray(allowed_ids, dtype=np.int64))
        while True:
            entry = await self._fresh(store_id)
            if entry is None:
                return []
            async with entry.lock.read():
                if entry.index is not None:  # else it was discarded meanwhile: look again
                    return await _run(_search, entry.index, query, k, allowed)

    async def describe(self, store_id: str) -> IndexInfo | None:
        entry = await self._fresh(store_id)
        if entry is None or entry.index is None:
            return None
        index = entry.index
        kind = "approximate" if isinstance(index, faiss.IndexIVF) else "exact"
        return IndexInfo(kind, int(index.ntotal), int(index.d), int(entry.head["version"]))

    # --- reading ------------------------------------------------------------------------------------

    async def _fresh(self, store: str, *, locked: bool = False) -> _Entry | None:
        """The store's index caught up with the published HEAD; None when the store has no vectors."""
        head = await self._read_head(store)
        entry = self._cache.get(store)
        valid = head is not None and head is not _CORRUPT
        if valid and entry is not None and entry.index is not None and _covers(entry.head, head):
            self._cache.move_to_end(store)
            return entry
        if head is None and not await self._has_chunks(store):
            self._forget(store)
            return None
        if valid:
            try:
                return await self._sync(store)
            except (BlobNotFound, IndexCorrupt) as error:
                log.warning("vector index of %s unreadable (%r): rebuilding it from its chunks", store, error)
        if locked:
            return await self._rebuild(store, head if valid else None)
        async with self._writing(store):  # another process may have repaired it meanwhile: look again
            return await self._fresh(store, locked=True)

    async def _sync(self, store: str) -> _Entry:
        entry = self._entry(store)
        async with entry.lock.write():
            head = await self._read_head(store)
            if head is None or head is _CORRUPT:
                raise IndexCorrupt("HEAD vanished")
            if entry.index is not None and _covers(entry.head, head):
                return entry
            try:
                if entry.index is not None and entry.head["epoch"] == head["epoch"]:
                    try:
                        await self._replay(store, entry, head)
                        return entry
                    except BlobNotFound:  # compacted away meanwhile: load the snapshot instead
                        pass
                blob = await self.blobs.read_all(_key(store, f"{head['epoch']}/snapshot-{head['base']}.faiss"))
                entry.index, entry.head = await asyncio.to_thread(_deserialize, blob), {**head, "version": head["base"]}
                await self._replay(store, entry, head)
                return entry
            except BaseException:
                entry.index = entry.head = None
                raise

    async def _replay(self, store: str, entry: _Entry, head: dict) -> None:
        versions = list(range(entry.head["version"] + 1, head["version"] + 1))
        for start in range(0, len(versions), 16):
            batch = versions[start : start + 16]
            blobs = await asyncio.gather(*(self.blobs.read_all(_key(store, f"{head['epoch']}/delta-{v}.npz")) for v in batch))
            for version, blob in zip(batch, blobs):
                await _run(_apply, entry.index, *_decode_delta(blob))
                entry.head = {**head, "version": version}

    # --- writing (the caller holds `_writing(store)`) -------------------------------------------------

    async def _change(self, store: str, entry: _Entry, add_ids, add_vectors, remove_ids) -> None:
        head = entry.head
        new_head = {**head, "version": head["version"] + 1, "delta_rows": head["delta_rows"] + len(add_ids) + len(remove_ids)}
        try:
            async with entry.lock.write():
                await _run(_apply, entry.index, add_ids, add_vectors, remove_ids)
                entry.head = new_head
            if self._needs_rebuild(head, entry.index.ntotal):
                await self._rebuild(store, head)
                return
            delta = await asyncio.to_thread(_encode_delta, add_ids, add_vectors, remove_ids)
            await self.blobs.put(_key(store, f"{head['epoch']}/delta-{new_head['version']}.npz"), delta)
            await self._write_head(store, new_head)
        except BaseException:
            self._forget(store)
            raise
        if new_head["delta_rows"] >= max(COMPACT_MIN_ROWS, head["base_rows"] // 2) or new_head["version"] - head["base"] >= MAX_DELTAS:
            try:
                await self._compact(store, entry)
            except Exception:  # the change is published; folding it can wait for the next one
                log.exception("compacting the vector index of %s failed", store)

    def _needs_rebuild(self, head: dict, count: int) -> bool:
        if head["kind"] == "exact":
            return count >= self.exact_threshold
        return count < self.exact_threshold // 2 or not head["trained"] // 4 <= count <= 4 * head["trained"]

    async def _compact(self, store: str, entry: _Entry) -> None:
        head = entry.head
        async with entry.lock.read():
            digest, payload = await _run(_serialize, entry.index)
            rows = int(entry.index.ntotal)
        await self._put_sealed(_key(store, f"{head['epoch']}/snapshot-{head['version']}.faiss"), digest, payload)
        new_head = {**head, "base": head["version"], "base_rows": rows, "delta_rows": 0, "oldest": head["base"] + 1}
        await self._write_head(store, new_head)
        if entry.head is head:
            entry.head = new_head
        # The previous generation: a reader past the old base replays the newer deltas, kept until next time.
        old = [_key(store, f"{head['epoch']}/snapshot-{head['base']}.faiss")]
        old += [_key(store, f"{head['epoch']}/delta-{v}.npz") for v in range(head["oldest"], head["base"] + 1)]
        await asyncio.gather(*(self.blobs.delete(key) for key in old))

    async def _rebuild(self, store: str, old_head: dict | None) -> _Entry | None:
        """Build the index from the chunk rows and publish it as a new epoch."""
        ids, matrix = await self._chunk_rows(store)
        if old_head is None:  # stray blobs of a lost or corrupt HEAD
            await self.blobs.delete_prefix(f"indexes/{store}")
        if not len(ids):
            self._forget(store)
            await self.blobs.delete_prefix(f"indexes/{store}")
            return None
        index = await asyncio.to_thread(_build, ids, matrix, self.exact_threshold)
        version = max(time.time_ns() // 1_000_000, old_head["version"] + 1 if old_head else 0)
        n = int(index.ntotal)
        head = {
            "format": 1, "epoch": secrets.token_hex(8), "version": version, "base": version, "oldest": version + 1,
            "kind": "approximate" if isinstance(index, faiss.IndexIVF) else "exact", "trained": n, "base_rows": n,
            "delta_rows": 0, "dim": int(index.d),
        }
        digest, payload = await asyncio.to_thread(_serialize, index)
        await self._put_sealed(_key(store, f"{head['epoch']}/snapshot-{version}.faiss"), digest, payload)
        entry = self._entry(store)
        async with entry.lock.write():
            entry.index, entry.head = index, head
        try:
            await self._write_head(store, head)
        except BaseException:
            self._forget(store)
            raise
        if old_head is not None:
            await self.blobs.delete_prefix(f"indexes/{store}/{old_head['epoch']}")
        return entry

    # --- plumbing -----------------------------------------------------------------------------------

    @asynccontextmanager
    async def _writing(self, store: str):
        """This store's writers take turns: in this process, then across processes."""
        local = self._local_locks.get(store)
        if local is None:
            local = self._local_locks[store] = asyncio.Lock()
        async with local:
            if not self.db.is_sqlite:
                async with self.db.begin() as conn:
                    key = zlib.crc32(store.encode()) - 2**31
                    await conn.execute(text("SELECT pg_advisory_xact_lock(:ns, :key)"), {"ns": _LOCK_NAMESPACE, "key": key})
                    yield
            elif self._lock_dir is None:
                yield
            else:
                async with _file_lock(self._lock_dir / f"{zlib.crc32(store.encode()) % 64:02d}.lock"):
                    yield

    def _entry(self, store: str) -> _Entry:
        entry = self._cache.get(store)
        if entry is None:
            entry = self._cache[store] = _Entry()
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(store)
        return entry

    def _forget(self, store: str) -> None:
        entry = self._cache.pop(store, None)
        if entry is not None:
            entry.index = entry.head = None

    async def _read_head(self, store: str) -> dict | None:
        try:
            raw = await self.blobs.read_all(_key(store, "HEAD"))
        except BlobNotFound:
            return None
        try:
            head = json.loads(raw)
            if isinstance(head, dict) and head.get("format") == 1 and isinstance(head.get("version"), int):
                return head
        except ValueError:
            pass
        return _CORRUPT

    async def _write_head(self, store: str, head: dict) -> None:
        await self.blobs.put(_key(store, "HEAD"), json.dumps(head).encode())

    async def _put_sealed(self, key: str, digest: bytes, payload: np.ndarray) -> None:
        view = memoryview(payload)
        async with self.blobs.writer(key) as writer:
            await writer.write(digest)
            for start in range(0, len(view), _WRITE_SLICE):
                await writer.write(view[start : start + _WRITE_SLICE])

    async def _has_chunks(self, store: str) -> bool:
        return await self.db.fetch_one(text("SELECT 1 FROM chunks WHERE vector_store_id = :store LIMIT 1"), {"store": store}) is not None

    async def _with_rows(self, store: str, ids: np.ndarray, vectors: np.ndarray):
        """The ids (last occurrence wins) whose chunk rows exist in this store, with their vectors."""
        _, last = np.unique(ids[::-1], return_index=True)
        keep = len(ids) - 1 - last
        ids, vectors = ids[keep], vectors[keep]
        sql = f"SELECT seq FROM chunks WHERE {in_store_with_ids(self.db.is_sqlite)}"
        async with self.db.connect() as conn:
            rows = (await conn.execute(text(sql), {"store": store, "ids": ids_value(ids, self.db.is_sqlite)})).all()
        mask = np.isin(ids, np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)))
        return ids[mask], np.ascontiguousarray(vectors[mask])

    async def _chunk_rows(self, store: str) -> tuple[np.ndarray, np.ndarray | None]:
        ids: list[int] = []
        vectors: list[bytes] = []
        async with self.db.connect() as conn:
            result = await conn.stream(text("SELECT seq, vector FROM chunks WHERE vector_store_id = :store"), {"store": store})
            async for rows in result.partitions(4096):
                for seq, vector in rows:
                    ids.append(seq)
                    vectors.append(vector)
        return np.asarray(ids, dtype=np.int64), (await asyncio.to_thread(_matrix, vectors) if vectors else None)


# --- faiss, in worker threads ---------------------------------------------------------------------------


def _key(store: str, name: str) -> str:
    return f"indexes/{store}/{name}"


def _covers(have: dict | None, head: dict) -> bool:
    """Our index is at least as new as the published HEAD (newer: our own change, not yet published)."""
    return have is not None and (have["version"] > head["version"] or (have["epoch"] == head["epoch"] and have["version"] == head["version"]))


async def _run(fn, *args):
    """`fn` in a worker thread. If we are cancelled meanwhile we still wait for it, so no lock is released
    while faiss is working on the index it guards."""
    future = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        while not future.done():
            try:
                await asyncio.shield(future)
            except BaseException:
                pass
        raise


@asynccontextmanager
async def _file_lock(path: Path):
    """An exclusive flock, polled so that no thread ever blocks on it."""
    handle = await asyncio.to_thread(_open_lock_file, path)
    try:
        delay = 0.001
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)
        yield
    finally:
        handle.close()


def _open_lock_file(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "a")


def _matrix(vectors: list[bytes]) -> np.ndarray:
    dim = len(vectors[0]) // 4
    if any(len(v) != 4 * dim for v in vectors):
        raise IndexCorrupt("chunks of one store have vectors of different sizes")
    return np.frombuffer(b"".join(vectors), dtype="<f4").reshape(len(vectors), dim)


def _build(ids: np.ndarray, matrix: np.ndarray, exact_threshold: int) -> faiss.Index:
    n, dim = matrix.shape
    if n < exact_threshold:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    else:
        nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
        index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, nlist, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        index.cp.max_points_per_centroid = 40  # k-means on a sample: 40 points a list is plenty
        index.train(matrix)
    index.add_with_ids(matrix, ids)
    return index


def _apply(index: faiss.Index, add_ids: np.ndarray, add_vectors: np.ndarray, remove_ids: np.ndarray) -> None:
    gone = np.concatenate([remove_ids, add_ids])  # removing re-added ids first makes `add` idempotent
    if len(gone):
        index.remove_ids(faiss.IDSelectorBatch(gone))
    if len(add_ids):
        index.add_with_ids(add_vectors, add_ids)


def _search(index: faiss.Index, query: np.ndarray, k: int, allowed: np.ndarray | None) -> list[tuple[int, float]]:
    n = index.ntotal
    query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
    if query.shape[1] != index.d:
        raise ValueError(f"query has {query.shape[1]} dimensions; this store's vectors have {index.d}")
    if n == 0:
        return []
    selector = faiss.IDSelectorBatch(allowed) if allowed is not None else None
    if isinstance(index, faiss.IndexIVF):
        nprobe = max(MIN_NPROBE, math.ceil(index.nlist * PROBE_FRACTION))
        if allowed is not None:  # as many allowed vectors seen as an unfiltered search would see
            nprobe = math.ceil(nprobe * n / min(len(allowed), n))
        params = faiss.SearchParametersIVF(nprobe=min(nprobe, index.nlist))
        if selector is not None:
            params.sel = selector
    else:
        params = faiss.SearchParameters(sel=selector) if selector is not None else None
    scores, labels = index.search(query, min(k, n), params=params)
    return [(int(label), float(score)) for score, label in zip(scores[0], labels[0]) if label >= 0]


def _serialize(index: faiss.Index) -> tuple[bytes, np.ndarray]:
    payload = faiss.serialize_index(index)
    return hashlib.blake2b(payload, digest_size=16).digest(), payload


def _unseal(blob: bytes) -> memoryview:
    body = memoryview(blob)[16:]
    if len(blob) < 16 or hashlib.blake2b(body, digest_size=16).digest() != bytes(blob[:16]):
        raise IndexCorrupt("checksum mismatch")
    return body


def _deserialize(blob: bytes) -> faiss.Index:
    try:
        return faiss.deserialize_index(np.frombuffer(_unseal(blob), dtype=np.uint8))
    except RuntimeError as error:
        raise IndexCorrupt(str(error)) from error


def _encode_delta(add_ids: np.ndarray, add_vectors: np.ndarray, remove_ids: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, add_ids=add_ids, add_vectors=add_vectors, remove_ids=remove_ids)
    payload = buffer.getvalue()
    return hashlib.blake2b(payload, digest_size=16).digest() + payload


def _decode_delta(blob: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        with np.load(io.BytesIO(_unseal(blob)), allow_pickle=False) as arrays:
            return arrays["add_ids"], arrays["add_vectors"], arrays["remove_ids"]
    except (ValueError, KeyError, OSError, zipfile.BadZipFile) as error:
        raise IndexCorrupt(str(error)) from error
