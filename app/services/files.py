"""Files: bytes in the blob store, metadata in the `files` table.

A file is written in two steps so a body can be streamed before its form fields are all known:
`stage()` streams the bytes to the blob store under a fresh id, `commit()` validates the metadata and
inserts the row (or `discard()` drops the blob). Expired files vanish from reads at once and are
deleted by the sweep job.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import AsyncIterable, AsyncIterator, get_args

from openai.types import FilePurpose
from sqlalchemy import bindparam, delete, insert, or_, select

from app.core.errors import invalid_request, not_found, too_large
from app.core.ids import new_id
from app.core.pagination import Page, fetch_page, list_body
from storage.blobs import BlobStore
from storage.db import Database
from storage.models import File
from storage.prepared import Prepared

files = File.__table__
PURPOSES: tuple[str, ...] = get_args(FilePurpose)
# Purposes only Understudy itself writes (batch results, fine-tuning metrics, assistant outputs).
OUTPUT_PURPOSES = ("batch_output", "fine-tune-results", "assistants_output")
BATCH_FILE_TTL = 30 * 24 * 3600
MIN_TTL, MAX_TTL = 3600, 30 * 24 * 3600


@dataclass
class StagedFile:
    id: str
    blob_key: str
    bytes: int


def file_object(row) -> dict:
    return _wire(row.id, row.bytes, row.created_at, row.filename, row.purpose, row.status, row.status_details, row.expires_at)


def _wire(file_id, size, created_at, filename, purpose, status, status_details, expires_at) -> dict:
    body = {"id": file_id, "object": "file", "bytes": size, "created_at": created_at, "filename": filename, "purpose": purpose, "status": status}
    # OpenAI's schema has these as non-nullable and optional: absent rather than null.
    if expires_at is not None:
        body["expires_at"] = expires_at
    if status_details is not None:
        body["status_details"] = status_details
    return body


def _file_objects(rows) -> list[dict]:
    """`file_object` for a page of plain `_WIRE` rows (in `_wire`'s argument order): the list's hot loop."""
    return [_wire(*row) for row in rows]


def check_purpose(purpose: str | None, allowed: tuple[str, ...] = PURPOSES) -> str:
    if purpose is None:
        raise invalid_request("Missing required parameter: 'purpose'.", param="purpose", code="missing_required_parameter")
    if purpose not in allowed:
        supported = ", ".join(f"'{p}'" for p in allowed)
        raise invalid_request(
            f"Invalid value: '{purpose}'. Supported values are: {supported}.", param="purpose", code="invalid_value"
        )
    return purpose


def check_expires_after(expires_after: dict | None) -> int | None:
    """The file's lifetime in seconds, validated as OpenAI does (anchor `created_at`, 1 hour to 30 days)."""
    if expires_after is None:
        return None
    if not isinstance(expires_after, dict):
        raise invalid_request("Invalid type for 'expires_after': expected an object.", param="expires_after", code="invalid_type")
    for field in ("anchor", "seconds"):
        if expires_after.get(field) is None:
            raise invalid_request(
                f"Missing required parameter: 'expires_after.{field}'.", param=f"expires_after.{field}", code="missing_required_parameter"
            )
    anchor = expires_after["anchor"]
    if anchor != "created_at":
        raise invalid_request(
            f"Invalid value: '{anchor}'. Supported values are: 'created_at'.", param="expires_after.anchor", code="invalid_value"
        )
    seconds = expires_after["seconds"]
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        raise invalid_request(
            "Invalid type for 'expires_after.seconds': expected an integer.", param="expires_after.seconds", code="invalid_type"
        )
    if not MIN_TTL <= seconds <= MAX_TTL:
        raise invalid_request(
            f"Invalid 'expires_after.seconds': expected a value between {MIN_TTL} and {MAX_TTL}, but got {seconds} instead.",
            param="expires_after.seconds",
            code="integer_out_of_range",
        )
    return seconds


def _live(now):
    return or_(files.c.expires_at.is_(None), files.c.expires_at > now)


# Built once: the id lookup and the list are the hottest queries there are.
_LIVE_NOW = (_live(bindparam("now")),)
# The columns of the wire object: reading fewer columns per row is most of a list page's cost.
_WIRE = tuple(files.c[name] for name in ("id", "bytes", "created_at", "filename", "purpose", "status", "status_details", "expires_at"))
_BY_ID = (files.c.id == bindparam("id"), files.c.tenant_id == bindparam("tenant_id"), *_LIVE_NOW)
_GET_WIRE = Prepared(select(*_WIRE).where(*_BY_ID))
_GET_ROW = Prepared(select(files).where(*_BY_ID))


class FilesService:
    def __init__(self, db: Database, blobs: BlobStore, *, max_file_bytes: int, on_delete=None) -> None:
        self._db = db
        self._blobs = blobs
        self.max_file_bytes = max_file_bytes
        # Called with (tenant_id, file_id) after a file is deleted: what was built from it goes too (its
        # chunks in vector stores: app/services/vector_stores/links.py, which sits below the stores).
        self._on_delete = on_delete

    async def stage(self, tenant_id: str, chunks: AsyncIterable[bytes], *, max_bytes: int | None = None) -> StagedFile:
        """Streams `chunks` into the blob store; over the size limit, nothing is kept and it is a 413."""
        limit = self.max_file_bytes if max_bytes is None else max_bytes
        file_id = new_id("file-")
        key = f"{tenant_id}/files/{file_id}"
        async with self._blobs.writer(key) as writer:
            async for chunk in chunks:
                if writer.bytes_written + len(chunk) > limit:
                    raise too_large(f"File is too large: the maximum size is {limit} bytes.", param="file")
                await writer.write(chunk)
        return StagedFile(id=file_id, blob_key=key, bytes=writer.bytes_written)

    async def discard(self, staged: StagedFile) -> None:
        await self._blobs.delete(staged.blob_key)

    def row_values(
        self, tenant_id: str, staged: StagedFile, *, filename: str, purpose: str, ttl: int | None, mime_type: str | None, now: int
    ) -> dict:
        if ttl is None and purpose == "batch":
            ttl = BATCH_FILE_TTL
        return dict(
            id=staged.id, tenant_id=tenant_id, created_at=now, filename=filename, purpose=purpose, bytes=staged.bytes,
            status="processed", expires_at=None if ttl is None else now + ttl, mime_type=mime_type, blob_key=staged.blob_key,
        )

    async def commit(
        self,
        tenant_id: str,
        staged: StagedFile,
        *,
        filename: str,
        purpose: str,
        expires_after: dict | None = None,
        mime_type: str | None = None,
        allowed_purposes: tuple[str, ...] = PURPOSES,
    ) -> dict:
        try:
            check_purpose(purpose, allowed_purposes)
            ttl = check_expires_after(expires_after)
            values = self.row_values(tenant_id, staged, filename=filename, purpose=purpose, ttl=ttl, mime_type=mime_type, now=int(time.time()))
            async with self._db.begin() as conn:
                await conn.execute(insert(files).values(**values))
        except BaseException:
            await self.discard(staged)
            raise
        return file_object(Row(values))

    async def create_from_bytes(
        self, tenant_id: str, data: bytes, *, filename: str, purpose: str, mime_type: str | None = None, expires_after: dict | None = None
    ) -> dict:
        """For files Understudy writes itself (batch output, fine-tuning results)."""

        async def one_chunk():
            yield data

        staged = await self.stage(tenant_id, one_chunk(), max_bytes=max(len(data), 1))
        return await self.commit(
            tenant_id, staged, filename=filename, purpose=purpose, mime_type=mime_type, expires_after=expires_after,
            allowed_purposes=PURPOSES + OUTPUT_PURPOSES,
        )

    async def get_row(self, tenant_id: str, file_id: str, query: Prepared = _GET_ROW):
        row = await self._db.fetch_one(query, {"id": file_id, "tenant_id": tenant_id, "now": int(time.time())})
        if row is None:
            raise not_found("File", file_id, param="file_id")
        return row

    async def get(self, tenant_id: str, file_id: str) -> dict:
        return file_object(await self.get_row(tenant_id, file_id, _GET_WIRE))

    async def list(self, tenant_id: str, page: Page, purpose: str | None = None) -> dict:
        filters = {"tenant_id": tenant_id}
        if purpose:
            filters["purpose"] = purpose
        rows, has_more = await fetch_page(self._db, files, page, filters, _LIVE_NOW, {"now": int(time.time())}, _WIRE, plain=True)
        return list_body(_file_objects(rows), has_more)

    async def delete(self, tenant_id: str, file_id: str) -> dict:
        async with self._db.begin() as conn:
            row = (
                await conn.execute(
                    delete(files)
                    .where(files.c.id == file_id, files.c.tenant_id == tenant_id, _live(int(time.time())))
                    .returning(files.c.blob_key)
                )
            ).first()
        if row is None:
            raise not_found("File", file_id, param="file_id")
        await self._blobs.delete(row.blob_key)
        if self._on_delete is not None:
            await self._on_delete(tenant_id, file_id)
        return {"id": file_id, "object": "file", "deleted": True}

    async def content(self, tenant_id: str, file_id: str) -> tuple[object, AsyncIterator[bytes]]:
        row = await self.get_row(tenant_id, file_id)
        return row, self._blobs.read(row.blob_key)

    async def read_all(self, tenant_id: str, file_id: str) -> bytes:
        row = await self.get_row(tenant_id, file_id)
        return await self._blobs.read_all(row.blob_key)

    async def sweep_expired(self, now: int | None = None) -> int:
        now = int(time.time()) if now is None else now
        async with self._db.begin() as conn:
            keys = (
                await conn.execute(delete(files).where(files.c.expires_at <= now).returning(files.c.blob_key))
            ).scalars().all()
        for key in keys:
            await self._blobs.delete(key)
        return len(keys)


class Row:
    """Attribute access over a dict of column values, so a row just written renders like a fetched one."""

    def __init__(self, values: dict) -> None:
        self.__dict__.update(values)
        self.__dict__.setdefault("status_details", None)


