"""The blob store protocol every backend implements.

Keys are built by the services from our own ids (`<tenant>/files/<file id>`), never from a client's
filename; `validate_key` enforces that shape so no key can escape its store.
"""
from __future__ import annotations

import re
from contextlib import AbstractAsyncContextManager
from typing import AsyncIterator, Protocol

_KEY_RE = re.compile(r"^[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*(?:/[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*)*$")
DEFAULT_CHUNK = 1024 * 1024


class BlobNotFound(KeyError):
    pass


def validate_key(key: str) -> str:
    if len(key) > 512 or not _KEY_RE.match(key):
        raise ValueError(f"invalid blob key: {key!r}")
    return key


class BlobWriter(Protocol):
    """Receives a blob's bytes in order. `bytes_written` counts them."""

    bytes_written: int

    async def write(self, data: bytes) -> None: ...


class BlobStore(Protocol):
    name: str

    def writer(self, key: str) -> AbstractAsyncContextManager[BlobWriter]:
        """Stream a blob in. It appears under `key` atomically when the block exits cleanly and not at
        all when it raises; a reader never sees half a blob."""
        ...

    async def put(self, key: str, data: bytes) -> None: ...

    def read(self, key: str, *, chunk_size: int = DEFAULT_CHUNK) -> AsyncIterator[bytes]:
        """The blob's bytes in chunks of at most `chunk_size`; raises BlobNotFound before the first chunk."""
        ...

    async def read_all(self, key: str) -> bytes: ...

    async def size(self, key: str) -> int: ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None:
        """Idempotent: deleting a missing blob is not an error."""
        ...

    async def delete_prefix(self, prefix: str) -> None: ...

    async def close(self) -> None: ...
