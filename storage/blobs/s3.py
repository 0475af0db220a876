"""Blobs as objects in one S3 bucket, through the `minio` client.

minio is blocking, so every call runs in a thread. A `writer` streams: a dedicated thread runs one
`put_object` whose input is a file-like object fed chunk by chunk from `write()`, so memory stays at a
few queued chunks plus minio's part buffers whatever the blob's size. S3 makes the object visible only
when the upload completes, which gives the protocol's atomicity for free; when the block raises, our
stream raises inside put_object and minio aborts the multipart upload.
"""
from __future__ import annotations

import asyncio
import queue
import threading
from contextlib import asynccontextmanager
from typing import AsyncIterator

from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from storage.blobs.base import DEFAULT_CHUNK, BlobNotFound, validate_key

# put_object(length=-1) keeps about three parts in memory at once (the previous part until the next is
# read, the next, and its `[:-1]` copy), so 8 MiB parts cost ~24 MiB; 16 MiB ones measured ~65 MiB of
# RSS. 10,000 parts (the S3 limit) of 8 MiB still allow blobs up to ~80 GB.
DEFAULT_PART_SIZE = 8 * 1024 * 1024
_MAX_PENDING_CHUNKS = 4  # chunks (of the caller's size) queued between write() and the upload thread
_NOT_FOUND = {"NoSuchKey", "NoSuchObject", "NoSuchBucket", "ResourceNotFound"}

_EOF = object()
_ABORT = object()


class _UploadAborted(Exception):
    """Raised inside put_object's read() so minio aborts the multipart upload."""


class _ChunkReader:
    """The file-like object put_object reads from; `write()` feeds it through a queue."""

    def __init__(self, on_consumed) -> None:
        self.chunks: queue.Queue = queue.Queue()  # bounded by the writer's semaphore, not here
        self._on_consumed = on_consumed
        self._rest = b""
        self._eof = False

    def read(self, size: int = -1) -> bytes:
        # Hand minio whole parts: it concatenates what read() returns with `+=` (quadratic in the
        # number of calls), and taking exactly `size` bytes avoids a second part-sized copy.
        parts, have = [], 0
        while size < 0 or have < size:
            item = self._next()
            if item is None:
                break
            if 0 <= size < have + len(item):
                cut = size - have
                item, self._rest = item[:cut], item[cut:]
            parts.append(item)
            have += len(item)
        return b"".join(parts)

    def _next(self) -> bytes | None:
        if self._rest:
            item, self._rest = self._rest, b""
            return item
        if self._eof:
            return None
        item = self.chunks.get()
        if item is _ABORT:
            raise _UploadAborted()
        if item is _EOF:
            self._eof = True
            return None
        self._on_consumed()
        return item


class _S3Writer:
    def __init__(self, client: Minio, bucket: str, key: str, part_size: int) -> None:
        self.bytes_written = 0
        self._loop = asyncio.get_running_loop()
        # An asyncio semaphore (not a bounded queue.put in a thread) bounds memory without tying up
        # executor threads while the upload is slower than the producer.
        self._slots = asyncio.Semaphore(_MAX_PENDING_CHUNKS)
        self._reader = _ChunkReader(lambda: self._loop.call_soon_threadsafe(self._slots.release))
        self._done: asyncio.Future = self._loop.create_future()
        # A dedicated thread, not asyncio.to_thread: the upload lives as long as the block, and
        # parking it in the default executor could starve (or deadlock) other to_thread users.
        self._thread = threading.Thread(
            target=self._upload, args=(client, bucket, key, part_size), name=f"s3-put:{key}", daemon=True
        )
        self._thread.start()

    def _upload(self, client: Minio, bucket: str, key: str, part_size: int) -> None:
        error: BaseException | None = None
        try:
            # length=-1: size unknown, multipart in part_size pieces. One part at a time: minio's
            # parallel pool holds several parts in memory and leaks its threads when the stream raises.
            client.put_object(bucket, key, self._reader, length=-1, part_size=part_size, num_parallel_uploads=1)
        except BaseException as exc:  # noqa: BLE001 - handed to the event loop below
            error = exc
        try:
            self._loop.call_soon_threadsafe(self._finish, error)
        except RuntimeError:  # the loop is gone; nobody is waiting
            pass

    def _finish(self, error: BaseException | None) -> None:
        if not self._done.done():
            if error is None:
                self._done.set_result(None)
            else:
                self._done.set_exception(error)
        self._slots.release()  # wake a write() waiting for a slot so it sees the failure

    def _raise_if_finished(self) -> None:
        if self._done.done():
            self._done.result()  # re-raises the upload's error
            raise RuntimeError("S3 upload finished before the writer was closed")

    async def write(self, data: bytes) -> None:
        if not data:
            return
        self._raise_if_finished()
        await self._slots.acquire()
        self._raise_if_finished()
        self._reader.chunks.put_nowait(bytes(data))
        self.bytes_written += len(data)

    async def commit(self) -> None:
        self._reader.chunks.put_nowait(_EOF)
        await self._done

    async def abort(self) -> None:
        self._reader.chunks.put_nowait(_ABORT)
        try:
            # Wait for minio to abort the multipart upload so nothing lingers once we re-raise.
            await asyncio.shield(self._done)
        except Exception:  # noqa: BLE001 - the block's own exception is the one to report
            pass


class S3BlobStore:
    name = "s3"

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        region: str | None = None,
        *,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        # minio wants host:port; accept a URL too (its scheme decides TLS when given).
        if endpoint.startswith("https://"):
            endpoint, secure = endpoint[len("https://"):], True
        elif endpoint.startswith("http://"):
            endpoint, secure = endpoint[len("http://"):], False
        self.bucket = bucket
        self.part_size = part_size
        self._client = Minio(
            endpoint.rstrip("/"), access_key=access_key, secret_key=secret_key, secure=secure, region=region
        )
        self._bucket_ready = False
        self._bucket_lock = asyncio.Lock()

    async def _ready(self) -> Minio:
        # The bucket is created on first use so that constructing a store does no I/O.
        if not self._bucket_ready:
            async with self._bucket_lock:
                if not self._bucket_ready:
                    await asyncio.to_thread(self._make_bucket)
                    self._bucket_ready = True
        return self._client

    def _make_bucket(self) -> None:
        if self._client.bucket_exists(self.bucket):
            return
        try:
            self._client.make_bucket(self.bucket)
        except S3Error as exc:  # another process won the race
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    @asynccontextmanager
    async def writer(self, key: str):
        validate_key(key)
        client = await self._ready()
        writer = _S3Writer(client, self.bucket, key, self.part_size)
        try:
            yield writer
        except BaseException:
            await writer.abort()
            raise
        await writer.commit()

    async def put(self, key: str, data: bytes) -> None:
        async with self.writer(key) as w:
            await w.write(data)

    async def read(self, key: str, *, chunk_size: int = DEFAULT_CHUNK) -> AsyncIterator[bytes]:
        validate_key(key)
        client = await self._ready()
        try:
            response = await asyncio.to_thread(client.get_object, self.bucket, key)
        except S3Error as exc:
            raise _not_found(exc, key) from None
        finished = False
        try:
            # urllib3 2.x read(n) returns exactly n bytes until the last chunk.
            while chunk := await asyncio.to_thread(response.read, chunk_size):
                yield chunk
            finished = True
        finally:
            if not finished:
                response.close()  # the consumer stopped mid-body: the connection must not be reused
            response.release_conn()

    async def read_all(self, key: str) -> bytes:
        return b"".join([chunk async for chunk in self.read(key)])

    async def size(self, key: str) -> int:
        validate_key(key)
        client = await self._ready()
        try:
            return (await asyncio.to_thread(client.stat_object, self.bucket, key)).size
        except S3Error as exc:
            raise _not_found(exc, key) from None

    async def exists(self, key: str) -> bool:
        try:
            await self.size(key)
        except BlobNotFound:
            return False
        return True

    async def delete(self, key: str) -> None:
        validate_key(key)
        client = await self._ready()
        await asyncio.to_thread(client.remove_object, self.bucket, key)  # S3 deletes are idempotent

    async def delete_prefix(self, prefix: str) -> None:
        # Same meaning as the file system store: the "directory" `prefix/` and a blob named `prefix`,
        # but not `prefix-other`.
        prefix = validate_key(prefix.rstrip("/"))
        client = await self._ready()
        await asyncio.to_thread(self._delete_prefix, client, prefix)

    def _delete_prefix(self, client: Minio, prefix: str) -> None:
        listed = client.list_objects(self.bucket, prefix=prefix + "/", recursive=True)
        doomed = (DeleteObject(o.object_name) for o in listed)
        # remove_objects is lazy: iterating it sends the batches and yields the failures.
        errors = list(client.remove_objects(self.bucket, doomed))
        if errors:
            raise RuntimeError(f"could not delete {len(errors)} blobs under {prefix!r}: {errors[0]}")
        client.remove_object(self.bucket, prefix)

    async def close(self) -> None:
        await asyncio.to_thread(self._client._http.clear)  # close pooled connections


def _not_found(exc: S3Error, key: str) -> Exception:
    return BlobNotFound(key) if exc.code in _NOT_FOUND else exc
