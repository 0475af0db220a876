"""Uploads: a large file sent in parts, assembled into a File on completion.

Each part is its own blob; `complete` streams the parts, in the order given, into the new file's blob
(computing the md5 on the way), so no step holds the whole file in memory. Status moves pending ->
completed | cancelled | expired, each by a conditional UPDATE so two racing requests cannot both win.
"""
from __future__ import annotations

import hashlib
import re
import time
from typing import AsyncIterator

from sqlalchemy import delete, insert, select, update

from app.core.errors import invalid_request, not_found, too_large
from app.core.ids import new_id
from app.core.multipart import safe_filename
from app.services.files import FilesService, Row, check_expires_after, check_purpose, file_object, files
from storage.blobs import BlobStore
from storage.db import Database
from storage.models import Upload, UploadPart

uploads = Upload.__table__
parts = UploadPart.__table__
_MIME_RE = re.compile(r"^[\w.+-]+/[\w.+-]+(?:\s*;.*)?$")


def upload_object(row, file: dict | None = None) -> dict:
    status = row.status
    if status == "pending" and row.expires_at <= int(time.time()):
        status = "expired"
    return {
        "id": row.id,
        "object": "upload",
        "bytes": row.bytes,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "filename": row.filename,
        "purpose": row.purpose,
        "status": status,
        "file": file,
    }


def part_object(part_id: str, upload_id: str, created_at: int) -> dict:
    return {"id": part_id, "object": "upload.part", "created_at": created_at, "upload_id": upload_id}


class UploadsService:
    def __init__(self, db: Database, blobs: BlobStore, files_service: FilesService, *, max_upload_bytes: int, max_part_bytes: int, ttl_seconds: int) -> None:
        self._db = db
        self._blobs = blobs
        self._files = files_service
        self.max_upload_bytes = max_upload_bytes
        self.max_part_bytes = max_part_bytes
        self._ttl = ttl_seconds

    async def create(self, tenant_id: str, params: dict) -> dict:
        check_purpose(params["purpose"])
        check_expires_after(params.get("expires_after"))
        size = params["bytes"]
        if not 0 < size <= self.max_upload_bytes:
            raise invalid_request(
                f"Invalid 'bytes': an Upload must be between 1 and {self.max_upload_bytes} bytes, got {size}.",
                param="bytes", code="invalid_value",
            )
        if not _MIME_RE.match(params["mime_type"]):
            raise invalid_request(f"Invalid 'mime_type': '{params['mime_type']}' is not a MIME type.", param="mime_type", code="invalid_value")
        if not params["filename"].strip():
            raise invalid_request("Invalid 'filename': it must not be empty.", param="filename", code="invalid_value")
        filename = safe_filename(params["filename"])
        now = int(time.time())
        values = dict(
            id=new_id("upload_"), tenant_id=tenant_id, created_at=now, expires_at=now + self._ttl, status="pending",
            filename=filename, purpose=params["purpose"], mime_type=params["mime_type"], bytes=size,
            file_expires_after=params.get("expires_after"),
        )
        async with self._db.begin() as conn:
            await conn.execute(insert(uploads).values(**values))
        return upload_object(Row(values))

    async def _row(self, tenant_id: str, upload_id: str):
        row = await self._db.fetch_one(select(uploads).where(uploads.c.id == upload_id, uploads.c.tenant_id == tenant_id))
        if row is None:
            raise not_found("Upload", upload_id, param="upload_id")
        return row

    async def _pending_row(self, tenant_id: str, upload_id: str):
        row = await self._row(tenant_id, upload_id)
        status = upload_object(row)["status"]
        if status != "pending":
            raise invalid_request(f"Upload {upload_id} is already {status}.", param="upload_id", code="upload_not_pending")
        return row

    async def add_part(self, tenant_id: str, upload_id: str, chunks: AsyncIterator[bytes]) -> dict:
        row = await self._pending_row(tenant_id, upload_id)
        part_id = new_id("part_")
        key = f"{tenant_id}/uploads/{upload_id}/{part_id}"
        async with self._blobs.writer(key) as writer:
            async for chunk in chunks:
                if writer.bytes_written + len(chunk) > self.max_part_bytes:
                    raise too_large(f"A part may be at most {self.max_part_bytes} bytes.", param="data")
                await writer.write(chunk)
        now = int(time.time())
        try:
            async with self._db.begin() as conn:
                # Touching the upload row first takes its write lock: a sweep or cancel that ended the
                # upload while the part streamed in wins, and the part is not recorded.
                still_pending = await conn.execute(
                    update(uploads)
                    .where(uploads.c.id == row.id, uploads.c.status == "pending", uploads.c.expires_at > now)
                    .values(status="pending")
                )
                if still_pending.rowcount != 1:
                    raise invalid_request(f"Upload {upload_id} is no longer pending.", param="upload_id", code="upload_not_pending")
                await conn.execute(
                    insert(parts).values(id=part_id, upload_id=row.id, tenant_id=tenant_id, created_at=now, bytes=writer.bytes_written, blob_key=key)
                )
        except BaseException:
            await self._blobs.delete(key)
            raise
        return part_object(part_id, upload_id, now)

    async def complete(self, tenant_id: str, upload_id: str, part_ids: list[str], md5: str | None) -> dict:
        row = await self._pending_row(tenant_id, upload_id)
        stored = {p.id: p for p in await self._db.fetch_all(select(parts).where(parts.c.upload_id == upload_id))}
        if len(set(part_ids)) != len(part_ids):
            raise invalid_request("Invalid 'part_ids': a part is listed more than once.", param="part_ids", code="invalid_value")
        unknown = [p for p in part_ids if p not in stored]
        if unknown:
            raise invalid_request(f"Invalid 'part_ids': {unknown[0]} is not a part of upload {upload_id}.", param="part_ids", code="invalid_value")
        total = sum(stored[p].bytes for p in part_ids)
        if total != row.bytes:
            raise invalid_request(
                f"The parts add up to {total} bytes, but the Upload was created with bytes={row.bytes}.", param="part_ids", code="bytes_mismatch"
            )
        digest = hashlib.md5()
        staged = await self._files.stage(tenant_id, self._concatenate([stored[p].blob_key for p in part_ids], digest), max_bytes=row.bytes)
        if md5 is not None and digest.hexdigest() != md5.lower():
            await self._files.discard(staged)
            raise invalid_request("The md5 of the uploaded parts does not match the given 'md5'.", param="md5", code="md5_mismatch")
        now = int(time.time())
        ttl = check_expires_after(row.file_expires_after)
        file_values = self._files.row_values(tenant_id, staged, filename=row.filename, purpose=row.purpose, ttl=ttl, mime_type=row.mime_type, now=now)
        try:
            async with self._db.begin() as conn:
                won = await conn.execute(
                    update(uploads)
                    .where(uploads.c.id == upload_id, uploads.c.status == "pending")
                    .values(status="completed", file_id=staged.id)
                )
                if won.rowcount != 1:
                    raise invalid_request(f"Upload {upload_id} is no longer pending.", param="upload_id", code="upload_not_pending")
                await conn.execute(insert(files).values(**file_values))
                await conn.execute(delete(parts).where(parts.c.upload_id == upload_id))
        except BaseException:
            await self._files.discard(staged)
            raise
        await self._blobs.delete_prefix(f"{tenant_id}/uploads/{upload_id}")
        return upload_object(Row({**row._asdict(), "status": "completed"}), file_object(Row(file_values)))

    async def _concatenate(self, keys: list[str], digest) -> AsyncIterator[bytes]:
        for key in keys:
            async for chunk in self._blobs.read(key):
                digest.update(chunk)
                yield chunk

    async def cancel(self, tenant_id: str, upload_id: str) -> dict:
        row = await self._pending_row(tenant_id, upload_id)
        async with self._db.begin() as conn:
            won = await conn.execute(update(uploads).where(uploads.c.id == upload_id, uploads.c.status == "pending").values(status="cancelled"))
            if won.rowcount != 1:
                raise invalid_request(f"Upload {upload_id} is no longer pending.", param="upload_id", code="upload_not_pending")
            await conn.execute(delete(parts).where(parts.c.upload_id == upload_id))
        await self._blobs.delete_prefix(f"{tenant_id}/uploads/{upload_id}")
        return upload_object(Row({**row._asdict(), "status": "cancelled"}))

    async def sweep_expired(self, now: int | None = None) -> int:
        """Marks pending uploads past their expiry `expired` and drops their parts."""
        now = int(time.time()) if now is None else now
        async with self._db.begin() as conn:
            expired = (
                await conn.execute(
                    update(uploads)
                    .where(uploads.c.status == "pending", uploads.c.expires_at <= now)
                    .values(status="expired")
                    .returning(uploads.c.id, uploads.c.tenant_id)
                )
            ).all()
            if expired:
                await conn.execute(delete(parts).where(parts.c.upload_id.in_([u.id for u in expired])))
        for upload in expired:
            await self._blobs.delete_prefix(f"{upload.tenant_id}/uploads/{upload.id}")
        return len(expired)
