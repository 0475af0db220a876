"""Blobs as files under one directory. Writes go to a temp file and are renamed into place (atomic)."""
from __future__ import annotations

import asyncio
import os
import shutil
import stat
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from storage.blobs.base import DEFAULT_CHUNK, BlobNotFound, validate_key


class _FileWriter:
    def __init__(self, fh) -> None:
        self._fh = fh
        self.bytes_written = 0

    async def write(self, data: bytes) -> None:
        if data:
            await asyncio.to_thread(self._fh.write, data)
            self.bytes_written += len(data)


class FileSystemBlobStore:
    name = "filesystem"

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        self._tmp = self.root / ".tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    @asynccontextmanager
    async def writer(self, key: str):
        final = self._path(key)
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp)
        fh = os.fdopen(fd, "wb", buffering=0)
        try:
            writer = _FileWriter(fh)
            yield writer
            await asyncio.to_thread(_commit, fh, tmp_name, final)
        except BaseException:
            fh.close()
            os.unlink(tmp_name)
            raise

    async def put(self, key: str, data: bytes) -> None:
        async with self.writer(key) as w:
            await w.write(data)

    async def read(self, key: str, *, chunk_size: int = DEFAULT_CHUNK) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            fh = await asyncio.to_thread(open, path, "rb")
        except (FileNotFoundError, IsADirectoryError):  # a key prefix is not a blob
            raise BlobNotFound(key) from None
        try:
            while chunk := await asyncio.to_thread(fh.read, chunk_size):
                yield chunk
        finally:
            fh.close()

    async def read_all(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self._path(key).read_bytes)
        except (FileNotFoundError, IsADirectoryError):
            raise BlobNotFound(key) from None

    async def size(self, key: str) -> int:
        try:
            info = await asyncio.to_thread(os.stat, self._path(key))
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        if not stat.S_ISREG(info.st_mode):
            raise BlobNotFound(key)
        return info.st_size

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def delete(self, key: str) -> None:
        try:
            await asyncio.to_thread(os.unlink, self._path(key))
        except FileNotFoundError:
            pass

    async def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix.rstrip("/"))
        await asyncio.to_thread(shutil.rmtree, path, True)
        if await asyncio.to_thread(path.is_file):
            await self.delete(prefix)

    async def close(self) -> None:
        return None


def _commit(fh, tmp_name: str, final: Path) -> None:
    os.fsync(fh.fileno())
    fh.close()
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp_name, final)
