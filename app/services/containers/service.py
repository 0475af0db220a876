"""Containers: the code interpreter's work dirs that persist between calls (`cntr_`), and their files (`cfile_`).

A container's files are rows in `container_files` with their bytes in the blob store (so a container
works with S3 and from any process or arq worker): each code run materialises them into a fresh sandbox
under /mnt/data and writes back what the code created or changed (`source: "assistant"`; uploads and
copied Files are `source: "user"`). A container is `running` until it has been idle for its
`expires_after.minutes`; then it is `expired`, its files are gone, and using it is a 400. Every use (a
file operation, a code run) moves `last_active_at` on; reading or listing containers does not, so a
client polling a container's status does not keep it alive. The sweep job expires idle ones in bulk.
Skills named at create time are copied in under /mnt/data/skills/<name>/, the version they had then, so
code and shell commands in the container find them where the hosted shell puts them.
"""
from __future__ import annotations

import math
import time
from typing import AsyncIterable, AsyncIterator

from sqlalchemy import and_, delete, func, insert, select, update

from app.core.errors import APIError, invalid_request, too_large
from app.core.ids import new_id
from app.core.pagination import Page, fetch_page, list_body
from storage.blobs import BlobStore
from storage.db import Database
from storage.models import Container, ContainerFile

containers = Container.__table__
cfiles = ContainerFile.__table__
WORK = "/mnt/data"
DEFAULT_MINUTES = 20
MAX_MINUTES = 7 * 24 * 60  # a bound of ours (OpenAI documents none); the default is OpenAI's 20
MAX_COPIED_FILES = 100
MAX_SKILLS = 200  # the spec's maxItems for a container's skills


def not_found(container_id: str) -> APIError:
    return APIError(f"Container with id '{container_id}' not found.", status_code=404, param="container_id")


def file_not_found(file_id: str) -> APIError:
    return APIError(f"Container file with id '{file_id}' not found.", status_code=404, param="file_id")


def expired(container_id: str) -> APIError:
    return APIError(f"Container '{container_id}' is expired: its files are gone. Create a new container.", status_code=400,
                    code="container_expired", param="container_id")


def check_expires_after(value) -> int:
    """The idle minutes (the SDK's types already checked the shape): `anchor` must be last_active_at."""
    if value is None:
        return DEFAULT_MINUTES
    minutes = value.get("minutes")
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise invalid_request("Invalid type for 'expires_after.minutes': expected an integer.", param="expires_after.minutes", code="invalid_type")
    if not 1 <= minutes <= MAX_MINUTES:
        raise invalid_request(f"Invalid 'expires_after.minutes': expected a value between 1 and {MAX_MINUTES}, but got {minutes} instead.",
                              param="expires_after.minutes", code="integer_out_of_range")
    return minutes


def container_object(row) -> dict:
    data = row.data
    body = {"id": row.id, "object": "container", "created_at": row.created_at, "status": row.status, "name": row.name,
            "expires_after": {"anchor": "last_active_at", "minutes": data["minutes"]}, "last_active_at": data["last_active_at"],
            "memory_limit": data.get("memory_limit", "1g")}
    if data.get("network_policy"):
        body["network_policy"] = data["network_policy"]
    return body


def file_object(row) -> dict:
    return {"id": row.id, "object": "container.file", "created_at": row.created_at, "bytes": row.bytes, "container_id": row.container_id,
            "path": row.path, "source": row.source}


def work_path(name: str) -> str:
    """`name` (a file name, or a path relative to the work dir) as the file's path in the container."""
    name = name.strip().lstrip("/")
    if name.startswith("mnt/data/"):
        name = name[len("mnt/data/"):]
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts or "\x00" in name:
        raise invalid_request(f"Invalid file name {name!r}: it must be a path inside {WORK}.", param="file")
    return f"{WORK}/{'/'.join(parts)}"


class ContainersService:
    def __init__(self, db: Database, blobs: BlobStore, files, skills, *, max_bytes: int, minute_seconds: float) -> None:
        self._db, self._blobs, self._files = db, blobs, files  # files: FilesService (`file_ids` are copied in)
        self._skills = skills  # SkillsService: `skills` are copied in
        self.max_bytes = max_bytes  # a container's files together
        self.minute_seconds = minute_seconds  # 60; tests shrink it to see expiry

    def _expires_at(self, last_active_at: int, minutes: int) -> int:
        return last_active_at + math.ceil(minutes * self.minute_seconds)

    # ---- containers ----

    async def create(self, tenant_id: str, params: dict) -> dict:
        minutes = check_expires_after(params.get("expires_after"))
        policy = params.get("network_policy")
        if policy is not None and policy.get("type") != "disabled":
            raise invalid_request("Invalid value for 'network_policy.type': containers here have no network; only 'disabled' is supported.",
                                  param="network_policy.type", code="invalid_value")
        file_ids = list(params.get("file_ids") or ())
        if len(file_ids) > MAX_COPIED_FILES:
            raise invalid_request(f"Invalid 'file_ids': array too long. Expected an array with maximum length {MAX_COPIED_FILES}, but got "
                                  f"{len(file_ids)} instead.", param="file_ids", code="array_above_max_length")
        for file_id in file_ids:
            await self._files.get_row(tenant_id, file_id)  # an unknown File is its 404 before anything is made
        skills = list(params.get("skills") or ())
        if len(skills) > MAX_SKILLS:
            raise invalid_request(f"Invalid 'skills': array too long. Expected an array with maximum length {MAX_SKILLS}, but got "
                                  f"{len(skills)} instead.", param="skills", code="array_above_max_length")
        for number, skill in enumerate(skills):  # unknown references too, before anything is made
            if skill.get("type") == "skill_reference":
                await self._skills.check_reference(tenant_id, skill.get("skill_id"), skill.get("version"), f"skills[{number}].skill_id")
        now = int(time.time())
        data = {"minutes": minutes, "last_active_at": now, "memory_limit": params.get("memory_limit") or "1g"}
        if policy is not None:
            data["network_policy"] = {"type": "disabled"}
        values = dict(id=new_id("cntr_"), tenant_id=tenant_id, name=params["name"], created_at=now, status="running",
                      expires_at=self._expires_at(now, minutes), data=data)
        async with self._db.begin() as conn:
            await conn.execute(insert(containers).values(**values))
        try:
            for file_id in file_ids:
                await self.copy_file(tenant_id, values["id"], file_id, touch=False)
            for number, skill in enumerate(skills):  # one skill's files in memory at a time
                found = await self._skills.bundle(tenant_id, skill, f"skills[{number}]")
                for path, data in found.files.items():
                    await self.add_file(tenant_id, values["id"], f"skills/{found.name}/{path}", _once(data), touch=False)
        except BaseException:
            await self.delete(tenant_id, values["id"])
            raise
        return container_object(_Row(values))

    async def _row(self, tenant_id: str, container_id: str):
        async with self._db.connect() as conn:
            row = (await conn.execute(select(containers).where(containers.c.id == container_id, containers.c.tenant_id == tenant_id))).first()
        if row is None:
            raise not_found(container_id)
        if row.status == "running" and row.expires_at <= time.time():
            await self._expire([row.id])
            return _Row({**row._mapping, "status": "expired"})
        return row

    async def get(self, tenant_id: str, container_id: str) -> dict:
        return container_object(await self._row(tenant_id, container_id))

    async def list(self, tenant_id: str, page: Page, name: str | None = None) -> dict:
        filters = {"tenant_id": tenant_id, **({"name": name} if name else {})}
        rows, has_more = await fetch_page(self._db, containers, page, filters)
        now = time.time()
        late = [r.id for r in rows if r.status == "running" and r.expires_at <= now]
        if late:
            await self._expire(late)
        return list_body([container_object(_Row({**r._mapping, "status": "expired"}) if r.id in late else r) for r in rows], has_more)

    async def delete(self, tenant_id: str, container_id: str) -> dict:
        async with self._db.begin() as conn:
            gone = (await conn.execute(delete(containers).where(containers.c.id == container_id, containers.c.tenant_id == tenant_id)
                                       .returning(containers.c.id))).first()
            if gone is None:
                raise not_found(container_id)
            await conn.execute(delete(cfiles).where(cfiles.c.container_id == container_id))
        await self._blobs.delete_prefix(f"{tenant_id}/containers/{container_id}/")
        return {"id": container_id, "object": "container.deleted", "deleted": True}

    async def use(self, tenant_id: str, container_id: str):
        """The running container (its `last_active_at` moved on), or OpenAI's 404 / 400 for one that is
        unknown or expired."""
        row = await self._row(tenant_id, container_id)
        if row.status != "running":
            raise expired(container_id)
        now = int(time.time())
        data = {**row.data, "last_active_at": now}
        async with self._db.begin() as conn:
            await conn.execute(update(containers).where(containers.c.id == container_id, containers.c.status == "running")
                               .values(data=data, expires_at=self._expires_at(now, data["minutes"])))
        return row

    async def _expire(self, ids: list[str]) -> None:
        """Marks the containers expired and drops their files (rows first: a reader never sees a file without bytes)."""
        async with self._db.begin() as conn:
            await conn.execute(update(containers).where(containers.c.id.in_(ids)).values(status="expired"))
            keys = (await conn.execute(delete(cfiles).where(cfiles.c.container_id.in_(ids)).returning(cfiles.c.blob_key))).scalars().all()
        for key in keys:
            await self._blobs.delete(key)

    async def sweep_expired(self, now: float | None = None) -> int:
        now = int(time.time() if now is None else now)  # an integer column: PostgreSQL's driver takes no float for it
        async with self._db.connect() as conn:
            ids = (await conn.execute(select(containers.c.id).where(containers.c.status == "running", containers.c.expires_at <= now)
                                      .limit(1000))).scalars().all()
        if ids:
            await self._expire(list(ids))
        return len(ids)

    # ---- files ----

    async def _used_bytes(self, container_id: str, except_path: str | None = None) -> int:
        condition = [cfiles.c.container_id == container_id]
        if except_path is not None:
            condition.append(cfiles.c.path != except_path)
        async with self._db.connect() as conn:
            return int((await conn.execute(select(func.coalesce(func.sum(cfiles.c.bytes), 0)).where(and_(*condition)))).scalar() or 0)

    async def add_file(self, tenant_id: str, container_id: str, name: str, chunks: AsyncIterable[bytes], *, source: str = "user",
                       touch: bool = True) -> dict:
        """Streams a file into the container at /mnt/data/`name` (replacing a file at that path), within the byte cap."""
        if touch:
            await self.use(tenant_id, container_id)
        path = work_path(name)
        room = self.max_bytes - await self._used_bytes(container_id, path)
        file_id = new_id("cfile_")
        key = f"{tenant_id}/containers/{container_id}/{file_id}"
        async with self._blobs.writer(key) as writer:
            async for chunk in chunks:
                if writer.bytes_written + len(chunk) > room:
                    raise too_large(f"Container is full: its files may take at most {self.max_bytes} bytes together.", param="file")
                await writer.write(chunk)
        values = dict(id=file_id, container_id=container_id, tenant_id=tenant_id, created_at=int(time.time()), path=path, source=source,
                      bytes=writer.bytes_written, blob_key=key)
        try:
            old = await self._replace(values)
        except BaseException:
            await self._blobs.delete(key)
            raise
        if old is not None:
            await self._blobs.delete(old)
        return file_object(_Row(values))

    async def _replace(self, values: dict) -> str | None:
        """Inserts the file row, taking the place of the one at its path (whose blob key is returned)."""
        async with self._db.begin() as conn:
            old = (await conn.execute(delete(cfiles).where(cfiles.c.container_id == values["container_id"], cfiles.c.path == values["path"])
                                      .returning(cfiles.c.blob_key))).scalar()
            running = (await conn.execute(select(containers.c.status).where(containers.c.id == values["container_id"]))).scalar()
            if running != "running":
                raise expired(values["container_id"])
            await conn.execute(insert(cfiles).values(**values))
        return old

    async def copy_file(self, tenant_id: str, container_id: str, file_id: str, *, touch: bool = True) -> dict:
        """A File (`file-…`) copied into the container under its filename."""
        row = await self._files.get_row(tenant_id, file_id)
        _, chunks = await self._files.content(tenant_id, file_id)
        return await self.add_file(tenant_id, container_id, row.filename, chunks, touch=touch)

    async def _file_row(self, tenant_id: str, container_id: str, file_id: str):
        async with self._db.connect() as conn:
            row = (await conn.execute(select(cfiles).where(cfiles.c.id == file_id, cfiles.c.container_id == container_id,
                                                           cfiles.c.tenant_id == tenant_id))).first()
        if row is None:
            raise file_not_found(file_id)
        return row

    async def list_files(self, tenant_id: str, container_id: str, page: Page) -> dict:
        await self.use(tenant_id, container_id)
        rows, has_more = await fetch_page(self._db, cfiles, page, {"container_id": container_id, "tenant_id": tenant_id})
        return list_body([file_object(r) for r in rows], has_more)

    async def get_file(self, tenant_id: str, container_id: str, file_id: str) -> dict:
        await self.use(tenant_id, container_id)
        return file_object(await self._file_row(tenant_id, container_id, file_id))

    async def delete_file(self, tenant_id: str, container_id: str, file_id: str) -> dict:
        await self.use(tenant_id, container_id)
        async with self._db.begin() as conn:
            key = (await conn.execute(delete(cfiles).where(cfiles.c.id == file_id, cfiles.c.container_id == container_id,
                                                           cfiles.c.tenant_id == tenant_id).returning(cfiles.c.blob_key))).scalar()
        if key is None:
            raise file_not_found(file_id)
        await self._blobs.delete(key)
        return {"id": file_id, "object": "container.file.deleted", "deleted": True}

    async def content(self, tenant_id: str, container_id: str, file_id: str) -> tuple[object, AsyncIterator[bytes]]:
        await self.use(tenant_id, container_id)
        row = await self._file_row(tenant_id, container_id, file_id)
        return row, self._blobs.read(row.blob_key)

    # ---- for the code interpreter ----

    async def materialise(self, tenant_id: str, container_id: str) -> list[tuple[str, bytes]]:
        """The container's files as (path relative to /mnt/data, bytes), for a run in it (a use)."""
        await self.use(tenant_id, container_id)
        async with self._db.connect() as conn:
            rows = (await conn.execute(select(cfiles.c.path, cfiles.c.blob_key).where(cfiles.c.container_id == container_id)
                                       .order_by(cfiles.c.seq))).all()
        return [(row.path[len(WORK) + 1:], await self._blobs.read_all(row.blob_key)) for row in rows]

    async def write_back(self, tenant_id: str, container_id: str, written: list[tuple[str, bytes]]) -> list[dict]:
        """Files a run created or changed, as the container's files (`source: "assistant"`); one that does
        not fit in the container's byte cap is left out."""
        made = []
        for name, data in written:
            async def one(data=data):
                yield data
            try:
                made.append(await self.add_file(tenant_id, container_id, name, one(), source="assistant", touch=False))
            except APIError as error:
                if error.status_code != 413:
                    raise
        return made


async def _once(data: bytes):
    yield data


class _Row:
    def __init__(self, values) -> None:
        self.__dict__.update(values)
