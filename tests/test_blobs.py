"""One contract suite for every BlobStore backend: the file system, and S3 against a real `weed mini`."""
from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import threading
import time
import uuid

import psutil
import pytest
from minio import Minio

from storage.blobs.base import BlobNotFound
from storage.blobs.fs import FileSystemBlobStore
from storage.blobs.s3 import S3BlobStore
from tests.support.seaweed import S3Endpoint, run_seaweed

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
SMALL_PART = 5 * MiB  # S3's minimum part size: the suite's S3 stores go multipart early


class Boom(Exception):
    pass


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> S3Endpoint:
    started = time.monotonic()
    with run_seaweed(tmp_path_factory.mktemp("seaweed")) as endpoint:
        print(f"weed mini answered after {time.monotonic() - started:.2f}s")
        yield endpoint


def _s3_store(server: S3Endpoint, **kwargs) -> S3BlobStore:
    # A fresh bucket per store: tests are isolated and each one exercises the lazy bucket creation.
    bucket = f"t-{uuid.uuid4().hex[:16]}"
    return S3BlobStore(server.endpoint, server.access_key, server.secret_key, bucket, **kwargs)


def _raw_client(server: S3Endpoint) -> Minio:
    return Minio(server.endpoint, server.access_key, server.secret_key, secure=False)


@pytest.fixture(params=["filesystem", pytest.param("s3", marks=pytest.mark.s3)])
async def blob_store(request, tmp_path):
    if request.param == "filesystem":
        store = FileSystemBlobStore(tmp_path / "blobs")
    else:
        store = _s3_store(request.getfixturevalue("s3_server"), part_size=SMALL_PART)
    yield store
    await store.close()


def _sha(chunks) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return h.hexdigest()


async def _read_sha(store, key: str, chunk_size: int = MiB) -> str:
    h = hashlib.sha256()
    async for chunk in store.read(key, chunk_size=chunk_size):
        h.update(chunk)
    return h.hexdigest()


# --- the contract ---------------------------------------------------------------------------------


async def test_put_read_round_trip(blob_store):
    await blob_store.put("t1/files/a.txt", b"hello blob")
    assert await blob_store.read_all("t1/files/a.txt") == b"hello blob"
    assert [c async for c in blob_store.read("t1/files/a.txt")] == [b"hello blob"]
    assert await blob_store.size("t1/files/a.txt") == 10
    assert await blob_store.exists("t1/files/a.txt")


async def test_empty_blob(blob_store):
    async with blob_store.writer("t1/empty") as w:
        pass
    assert w.bytes_written == 0
    assert await blob_store.exists("t1/empty")
    assert await blob_store.size("t1/empty") == 0
    assert await blob_store.read_all("t1/empty") == b""


async def test_streamed_write_of_many_chunks(blob_store):
    chunks = [os.urandom(MiB) for _ in range(40)]
    async with blob_store.writer("t1/files/big") as w:
        for c in chunks:
            await w.write(c)
    assert w.bytes_written == 40 * MiB
    assert await blob_store.size("t1/files/big") == 40 * MiB
    assert await _read_sha(blob_store, "t1/files/big") == _sha(chunks)


async def test_read_respects_chunk_size(blob_store):
    data = os.urandom(64 * 1024 * 2 + 1000)
    await blob_store.put("t1/chunked", data)
    chunks = [c async for c in blob_store.read("t1/chunked", chunk_size=64 * 1024)]
    assert [len(c) for c in chunks] == [64 * 1024, 64 * 1024, 1000]
    assert b"".join(chunks) == data


async def test_failed_writer_leaves_no_blob(blob_store):
    with pytest.raises(Boom):
        async with blob_store.writer("t1/partial") as w:
            for _ in range(12):  # more than two S3 parts, so a multipart upload is under way
                await w.write(os.urandom(MiB))
            raise Boom()
    assert not await blob_store.exists("t1/partial")
    with pytest.raises(BlobNotFound):
        await blob_store.read_all("t1/partial")


async def test_failed_writer_keeps_existing_blob(blob_store):
    await blob_store.put("t1/keep", b"old content")
    with pytest.raises(Boom):
        async with blob_store.writer("t1/keep") as w:
            for _ in range(12):
                await w.write(os.urandom(MiB))
            raise Boom()
    assert await blob_store.read_all("t1/keep") == b"old content"


async def test_cancelled_writer_leaves_no_blob(blob_store):
    started = asyncio.Event()

    async def upload():
        async with blob_store.writer("t1/cancelled") as w:
            await w.write(b"x" * MiB)
            started.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(upload())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not await blob_store.exists("t1/cancelled")


async def test_missing_key(blob_store):
    with pytest.raises(BlobNotFound):
        async for _ in blob_store.read("t1/nope"):
            pass
    with pytest.raises(BlobNotFound):
        await blob_store.read_all("t1/nope")
    with pytest.raises(BlobNotFound):
        await blob_store.size("t1/nope")
    assert not await blob_store.exists("t1/nope")
    await blob_store.delete("t1/nope")  # idempotent: no error


async def test_delete(blob_store):
    await blob_store.put("t1/doomed", b"x")
    await blob_store.delete("t1/doomed")
    assert not await blob_store.exists("t1/doomed")
    await blob_store.delete("t1/doomed")


async def test_a_directory_is_not_a_blob(blob_store):
    await blob_store.put("t1/dir/child", b"x")
    assert not await blob_store.exists("t1/dir")
    with pytest.raises(BlobNotFound):
        await blob_store.size("t1/dir")
    with pytest.raises(BlobNotFound):
        await blob_store.read_all("t1/dir")
    with pytest.raises(BlobNotFound):
        async for _ in blob_store.read("t1/dir"):
            pass


async def test_delete_prefix_removes_only_that_prefix(blob_store):
    doomed = ["t1/a/1", "t1/a/b/2", "t1/a/b/c/3"]
    kept = ["t1/ab", "t1/b/1", "t2/a/1", "other"]
    for key in doomed + kept:
        await blob_store.put(key, key.encode())
    await blob_store.delete_prefix("t1/a")
    for key in doomed:
        assert not await blob_store.exists(key), key
    for key in kept:
        assert await blob_store.read_all(key) == key.encode(), key
    await blob_store.delete_prefix("t1/nothing-here/")  # missing prefix: no-op


async def test_delete_prefix_with_trailing_slash(blob_store):
    await blob_store.put("t1/x/1", b"1")
    await blob_store.put("t1/xy", b"2")
    await blob_store.delete_prefix("t1/x/")
    assert not await blob_store.exists("t1/x/1")
    assert await blob_store.exists("t1/xy")


INVALID_KEYS = ["../x", "/abs", "a//b", "a/../b", "", "a/./b", "a/", "a b"]


async def _use_writer(store, key):
    async with store.writer(key) as w:
        await w.write(b"x")


async def _iterate(store, key):
    async for _ in store.read(key):
        pass


OPERATIONS = {
    "put": lambda s, k: s.put(k, b"x"),
    "writer": _use_writer,
    "read": _iterate,
    "read_all": lambda s, k: s.read_all(k),
    "size": lambda s, k: s.size(k),
    "exists": lambda s, k: s.exists(k),
    "delete": lambda s, k: s.delete(k),
    "delete_prefix": lambda s, k: s.delete_prefix(k),
}


@pytest.mark.parametrize("key", INVALID_KEYS)
async def test_invalid_keys_are_rejected(blob_store, key):
    for name, op in OPERATIONS.items():
        if name == "delete_prefix" and key == "a/":  # a trailing slash is fine for a prefix
            continue
        with pytest.raises(ValueError):
            await op(blob_store, key)


async def test_overwrite_replaces_content_atomically(blob_store):
    await blob_store.put("t1/over", b"version one")
    new = [os.urandom(MiB) for _ in range(12)]
    async with blob_store.writer("t1/over") as w:
        for c in new:
            await w.write(c)
        # Several parts of the new version have been sent; readers still see the old one, whole.
        assert await blob_store.read_all("t1/over") == b"version one"
        assert await blob_store.size("t1/over") == len(b"version one")
    assert await blob_store.size("t1/over") == 12 * MiB
    assert await _read_sha(blob_store, "t1/over") == _sha(new)


# --- S3 specifics ---------------------------------------------------------------------------------


@pytest.mark.s3
async def test_s3_failed_writer_aborts_the_multipart_upload(s3_server):
    store = _s3_store(s3_server, part_size=SMALL_PART)
    with pytest.raises(Boom):
        async with store.writer("t1/partial") as w:
            for _ in range(12):
                await w.write(os.urandom(MiB))
            raise Boom()
    # No orphaned parts left on the server (minio aborts the upload when our stream raises).
    uploads = _raw_client(s3_server)._list_multipart_uploads(store.bucket).uploads
    assert uploads == []
    assert not [t for t in threading.enumerate() if t.name.startswith("s3-put:")]  # upload thread ended
    await store.close()


@pytest.mark.s3
async def test_s3_upload_error_reaches_the_writer_without_hanging(s3_server):
    store = _s3_store(s3_server, part_size=SMALL_PART)
    await store.put("t1/first", b"x")  # creates the bucket
    await store.delete("t1/first")
    _raw_client(s3_server).remove_bucket(store.bucket)  # now every upload fails with NoSuchBucket

    async def upload():
        chunk = os.urandom(MiB)  # one chunk, reused: the producer outruns the upload and waits for slots
        async with store.writer("t1/second") as w:
            for _ in range(64):  # far more than is queued: a waiting write() must see the failure
                await w.write(chunk)

    with pytest.raises(Exception) as info:
        await asyncio.wait_for(upload(), timeout=30)
    assert getattr(info.value, "code", None) == "NoSuchBucket", repr(info.value)
    await store.close()


@pytest.mark.s3
async def test_s3_accepts_a_url_endpoint_and_construction_does_no_io(s3_server):
    S3BlobStore("127.0.0.1:1", "k", "s", "never-contacted")  # nothing listens on port 1
    store = S3BlobStore(
        f"http://{s3_server.endpoint}", s3_server.access_key, s3_server.secret_key, f"t-{uuid.uuid4().hex[:16]}"
    )
    await store.put("t1/a", b"via url")
    assert await store.read_all("t1/a") == b"via url"
    await store.close()


@pytest.mark.s3
async def test_s3_writer_memory_is_bounded(s3_server):
    store = _s3_store(s3_server)  # the production part size
    await store.put("t1/warm-up", os.urandom(MiB))  # bucket, connections, threads: not what we measure
    total, chunk = 200 * MiB, MiB
    proc = psutil.Process()
    gc.collect()
    baseline = peak = proc.memory_info().rss
    stop = threading.Event()

    def sample():
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, proc.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    digest = hashlib.sha256()
    try:
        async with store.writer("t1/huge") as w:
            for _ in range(total // chunk):
                data = os.urandom(chunk)  # fresh bytes each time, so buffering them would show
                digest.update(data)
                await w.write(data)
                del data
    finally:
        stop.set()
        sampler.join()
    growth = peak - baseline
    print(f"RSS growth while streaming {total // MiB} MiB: {growth / MiB:.1f} MiB")
    assert growth < 64 * MiB
    assert await store.size("t1/huge") == total
    assert await _read_sha(store, "t1/huge") == digest.hexdigest()
    await store.close()
