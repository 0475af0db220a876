"""Skills (`/v1/skills`): a skill is a name, a description and numbered, immutable versions of its files;
one version is its default. Each version's files are one zip in the blob store (bundle.py checks and
rebuilds what was uploaded); the skill shows its default version's name and description.

Version numbers count up from 1 and are never reused (`issued`); the default version cannot be deleted
while others remain (delete the skill, or move the default first).
"""
from __future__ import annotations

import asyncio
import time

from sqlalchemy import delete, insert, select, update

from app.core.errors import APIError, invalid_request
from app.core.ids import new_id
from app.core.pagination import Page, fetch_page, list_body
from app.services.skills import bundle as bundles
from app.services.skills.bundle import Bundle
from storage.blobs import BlobStore
from storage.db import Database
from storage.skill_tables import Skill, SkillVersion

skills = Skill.__table__
versions = SkillVersion.__table__


def skill_not_found(skill_id: str, param: str | None = None) -> APIError:
    return APIError(f"Skill with id '{skill_id}' not found.", status_code=404, param=param)


def version_not_found(skill_id: str, version: str, param: str | None = None) -> APIError:
    return APIError(f"Version '{version}' of skill '{skill_id}' not found.", status_code=404, param=param)


def skill_body(row) -> dict:
    return {"id": row.id, "object": "skill", "name": row.name, "description": row.description, "created_at": row.created_at,
            "default_version": str(row.default_version), "latest_version": str(row.latest_version)}


def version_body(row) -> dict:
    return {"object": "skill.version", "id": row.id, "skill_id": row.skill_id, "version": str(row.version), "created_at": row.created_at,
            "name": row.name, "description": row.description}


def version_number(version, param: str = "version") -> int | None:
    """A version as the API takes it: a positive integer (as a string or not); None for 'latest'."""
    if version == "latest":
        return None
    text = str(version).strip()
    if not text.isdigit() or int(text) < 1:
        raise invalid_request(f"Invalid '{param}': '{version}'. Expected a positive integer or 'latest'.", param=param, code="invalid_value")
    return int(text)


class SkillsService:
    def __init__(self, db: Database, blobs: BlobStore, *, max_bytes: int) -> None:
        self._db, self._blobs = db, blobs
        self.max_bytes = max_bytes

    # ---- skills ----

    async def create(self, tenant_id: str, parts: list[tuple[str | None, bytes]]) -> dict:
        skill = await asyncio.to_thread(bundles.from_upload, parts, self.max_bytes)
        skill_id, now = new_id("skill_"), int(time.time())
        row = await self._store_version(tenant_id, skill_id, 1, skill, now)
        try:
            async with self._db.begin() as conn:
                await conn.execute(insert(skills).values(id=skill_id, tenant_id=tenant_id, created_at=now, name=skill.name,
                                                         description=skill.description, default_version=1, latest_version=1, issued=1))
                await conn.execute(insert(versions).values(**row))
        except BaseException:
            await self._blobs.delete(row["blob_key"])
            raise
        return await self.get(tenant_id, skill_id)

    async def _row(self, tenant_id: str, skill_id: str, param: str | None = None):
        row = await self._db.fetch_one(select(skills).where(skills.c.tenant_id == tenant_id, skills.c.id == skill_id))
        if row is None:
            raise skill_not_found(skill_id, param)
        return row

    async def get(self, tenant_id: str, skill_id: str) -> dict:
        return skill_body(await self._row(tenant_id, skill_id))

    async def list(self, tenant_id: str, page: Page) -> dict:
        rows, has_more = await fetch_page(self._db, skills, page, {"tenant_id": tenant_id})
        return list_body([skill_body(r) for r in rows], has_more)

    async def update(self, tenant_id: str, skill_id: str, default_version) -> dict:
        """Points the skill at another of its versions (its name and description follow)."""
        await self._row(tenant_id, skill_id)
        chosen = await self._version_row(tenant_id, skill_id, default_version, param="default_version")
        async with self._db.begin() as conn:
            await conn.execute(update(skills).where(skills.c.id == skill_id, skills.c.tenant_id == tenant_id)
                               .values(default_version=chosen.version, name=chosen.name, description=chosen.description))
        return await self.get(tenant_id, skill_id)

    async def delete(self, tenant_id: str, skill_id: str) -> dict:
        await self._row(tenant_id, skill_id)
        async with self._db.begin() as conn:
            await conn.execute(delete(versions).where(versions.c.tenant_id == tenant_id, versions.c.skill_id == skill_id))
            await conn.execute(delete(skills).where(skills.c.tenant_id == tenant_id, skills.c.id == skill_id))
        await self._blobs.delete_prefix(f"{tenant_id}/skills/{skill_id}/")
        return {"id": skill_id, "object": "skill.deleted", "deleted": True}

    async def content(self, tenant_id: str, skill_id: str) -> tuple[str, bytes]:
        """The default version's zip, and a filename for it."""
        row = await self._row(tenant_id, skill_id)
        return await self.version_content(tenant_id, skill_id, str(row.default_version))

    # ---- versions ----

    async def create_version(self, tenant_id: str, skill_id: str, parts: list[tuple[str | None, bytes]], make_default: bool) -> dict:
        await self._row(tenant_id, skill_id)
        skill = await asyncio.to_thread(bundles.from_upload, parts, self.max_bytes)
        async with self._db.begin() as conn:  # the number, taken under the row's lock (never reused)
            number = (await conn.execute(update(skills).where(skills.c.id == skill_id, skills.c.tenant_id == tenant_id)
                                         .values(issued=skills.c.issued + 1).returning(skills.c.issued))).scalar_one_or_none()
        if number is None:
            raise skill_not_found(skill_id)
        now = int(time.time())
        row = await self._store_version(tenant_id, skill_id, number, skill, now)
        changes = {"latest_version": number}
        if make_default:
            changes.update(default_version=number, name=skill.name, description=skill.description)
        try:
            async with self._db.begin() as conn:
                await conn.execute(insert(versions).values(**row))
                await conn.execute(update(skills).where(skills.c.id == skill_id, skills.c.tenant_id == tenant_id).values(**changes))
        except BaseException:
            await self._blobs.delete(row["blob_key"])
            raise
        return version_body(await self._version_row(tenant_id, skill_id, str(number)))

    async def _store_version(self, tenant_id: str, skill_id: str, number: int, skill: Bundle, now: int) -> dict:
        version_id = new_id("skillver_")
        key = f"{tenant_id}/skills/{skill_id}/{version_id}.zip"
        await self._blobs.put(key, await asyncio.to_thread(bundles.to_zip, skill))
        return {"id": version_id, "tenant_id": tenant_id, "skill_id": skill_id, "version": number, "created_at": now, "name": skill.name,
                "description": skill.description, "bytes": skill.size, "blob_key": key}

    async def _version_row(self, tenant_id: str, skill_id: str, version, param: str | None = None):
        number = version_number(version, param or "version")
        if number is None:
            number = (await self._row(tenant_id, skill_id, param)).latest_version
        row = await self._db.fetch_one(select(versions).where(versions.c.tenant_id == tenant_id, versions.c.skill_id == skill_id,
                                                              versions.c.version == number))
        if row is None:
            raise version_not_found(skill_id, str(version), param)
        return row

    async def get_version(self, tenant_id: str, skill_id: str, version: str) -> dict:
        await self._row(tenant_id, skill_id)
        return version_body(await self._version_row(tenant_id, skill_id, version))

    async def list_versions(self, tenant_id: str, skill_id: str, page: Page) -> dict:
        await self._row(tenant_id, skill_id)
        rows, has_more = await fetch_page(self._db, versions, page, {"tenant_id": tenant_id, "skill_id": skill_id})
        return list_body([version_body(r) for r in rows], has_more)

    async def delete_version(self, tenant_id: str, skill_id: str, version: str) -> dict:
        skill = await self._row(tenant_id, skill_id)
        row = await self._version_row(tenant_id, skill_id, version)
        if row.version == skill.default_version:
            raise invalid_request(f"Version '{row.version}' is the default version of skill '{skill_id}': set another default version "
                                  "before deleting it, or delete the skill.", param="version", code="invalid_value")
        async with self._db.begin() as conn:
            await conn.execute(delete(versions).where(versions.c.id == row.id))
            latest = (await conn.execute(select(versions.c.version).where(versions.c.skill_id == skill_id)
                                         .order_by(versions.c.version.desc()).limit(1))).scalar_one_or_none()
            if latest is not None:  # (None: the skill was deleted meanwhile)
                await conn.execute(update(skills).where(skills.c.id == skill_id).values(latest_version=latest))
        await self._blobs.delete(row.blob_key)
        return {"object": "skill.version.deleted", "deleted": True, "id": row.id, "version": str(row.version)}

    async def version_content(self, tenant_id: str, skill_id: str, version: str) -> tuple[str, bytes]:
        await self._row(tenant_id, skill_id)
        row = await self._version_row(tenant_id, skill_id, version)
        return f"{row.name}.zip", await self._blobs.read_all(row.blob_key)

    # ---- for the shell tool ----

    async def check_reference(self, tenant_id: str, skill_id, version, param: str) -> None:
        """A `skill_reference` that names this tenant's skill (and, if given, one of its versions); else a 400."""
        try:
            if version is None:
                await self._row(tenant_id, skill_id, param)
            else:
                await self._version_row(tenant_id, skill_id, version, param)
        except APIError as error:
            error.status_code = 400  # in a request body, an unknown reference is the request's fault (OpenAI answers 400)
            raise

    async def bundle(self, tenant_id: str, skill: dict, param: str) -> Bundle:
        """The files of a request's skill param: a `skill_reference` to this tenant's skill (a 400 naming
        `param.skill_id` otherwise) or an `inline` zip (a 400 naming `param.source.data` if bad)."""
        if skill.get("type") == "inline":
            return await asyncio.to_thread(bundles.inline, skill, param, self.max_bytes)
        await self.check_reference(tenant_id, skill.get("skill_id"), skill.get("version"), f"{param}.skill_id")
        return await self.files(tenant_id, skill["skill_id"], skill.get("version"))

    async def describe(self, tenant_id: str, skill_id: str, version=None) -> tuple[str, str]:
        """A referenced version's (name, description), without reading its files."""
        skill = await self._row(tenant_id, skill_id)
        row = await self._version_row(tenant_id, skill_id, str(skill.default_version) if version is None else version)
        return row.name, row.description

    async def files(self, tenant_id: str, skill_id: str, version=None) -> Bundle:
        """The files of a skill's version (its default one when None), to put in a sandbox."""
        skill = await self._row(tenant_id, skill_id)
        row = await self._version_row(tenant_id, skill_id, str(skill.default_version) if version is None else version)
        return await asyncio.to_thread(bundles.from_stored, await self._blobs.read_all(row.blob_key), self.max_bytes)
