"""Projects (team mode): OpenAI's `organization.project` objects.

In keys mode a project is the tenant: every key issued for it resolves to the project's id, so all its
keys share the project's objects (and its rate limits and usage). Archiving a project shuts its keys out
at once; its objects stay.
"""
from __future__ import annotations

import time

from sqlalchemy import bindparam, insert, select, update

from app.core.auth import REVOCATIONS
from app.core.errors import APIError, invalid_request, not_found
from app.core.ids import new_id
from app.core.pagination import Page, fetch_page, list_body
from storage.db import Database
from storage.models import Project
from storage.prepared import Prepared

projects = Project.__table__
_GET = Prepared(select(projects).where(projects.c.id == bindparam("id")))
_BY_NAME = Prepared(
    select(projects).where(projects.c.name == bindparam("name"), projects.c.archived_at.is_(None)).order_by(projects.c.seq).limit(1)
)
_INSERT = Prepared(insert(projects))
_UPDATE = Prepared(
    update(projects).where(projects.c.id == bindparam("b_id")).values(name=bindparam("name"), external_key_id=bindparam("external_key_id"))
)
_ARCHIVE = Prepared(
    update(projects).where(projects.c.id == bindparam("b_id"), projects.c.archived_at.is_(None)).values(archived_at=bindparam("archived_at"))
)
_ACTIVE = (projects.c.archived_at.is_(None),)
RESIDENCIES = (
    "GLOBAL", "US_STORAGE_PROCESSING", "EU_STORAGE_PROCESSING", "JP_STORAGE", "KR_STORAGE", "CA_STORAGE", "SG_STORAGE",
    "IN_STORAGE", "AU_STORAGE", "GB_STORAGE", "AE_STORAGE", "AE_STORAGE_PROCESSING",
)


def project_object(row) -> dict:
    return {
        "id": row.id,
        "object": "organization.project",
        "name": row.name,
        "created_at": row.created_at,
        "archived_at": row.archived_at,
        "status": "archived" if row.archived_at is not None else "active",
        "external_key_id": row.external_key_id,
    }


def check_fields(body: dict, allowed: tuple[str, ...]) -> None:
    for key in body:
        if key not in allowed:
            raise APIError(f"Unknown parameter: '{key}'.", param=key, code="unknown_parameter")


def check_string(body: dict, field: str, *, required: bool = False, nullable: bool = True, max_length: int = 256) -> str | None:
    value = body.get(field)
    if value is None:
        if required or (field in body and not nullable):
            raise invalid_request(f"Missing required parameter: '{field}'.", param=field, code="missing_required_parameter")
        return None
    if not isinstance(value, str):
        raise invalid_request(f"Invalid type for '{field}': expected a string, but got {type(value).__name__} instead.",
                              param=field, code="invalid_type")
    if required and not value.strip():
        raise invalid_request(f"Invalid '{field}': empty string. Expected a non-empty string.", param=field, code="empty_string")
    if len(value) > max_length:
        raise invalid_request(f"Invalid '{field}': string too long. Expected a string with maximum length {max_length}.",
                              param=field, code="string_above_max_length")
    return value


class ProjectsService:
    def __init__(self, db: Database, bus=None) -> None:
        self._db = db
        self._bus = bus

    async def create(self, body: dict) -> dict:
        check_fields(body, ("name", "external_key_id", "residency"))
        name = check_string(body, "name", required=True)
        external_key_id = check_string(body, "external_key_id")
        residency = body.get("residency")
        if residency is not None and residency not in RESIDENCIES:
            raise invalid_request(f"Invalid value: '{residency}'. Supported values are: 'GLOBAL', …", param="residency", code="invalid_value")
        return project_object(await self._insert(name, external_key_id))

    async def _insert(self, name: str, external_key_id: str | None = None):
        values = {"id": new_id("proj_"), "name": name, "created_at": int(time.time()), "archived_at": None, "external_key_id": external_key_id}
        await self._db.write([(_INSERT, values)])
        return await self._row(values["id"])

    async def _row(self, project_id: str):
        row = await self._db.fetch_one(_GET, {"id": project_id})
        if row is None:
            raise not_found("Project", project_id, param="project_id")
        return row

    async def row(self, project_id: str):
        return await self._row(project_id)

    async def get(self, project_id: str) -> dict:
        return project_object(await self._row(project_id))

    async def list(self, page: Page, include_archived: bool = False) -> dict:
        rows, has_more = await fetch_page(self._db, projects, page, {}, () if include_archived else _ACTIVE)
        return list_body([project_object(row) for row in rows], has_more)

    async def modify(self, project_id: str, body: dict) -> dict:
        check_fields(body, ("name", "external_key_id"))
        row = await self._row(project_id)
        if row.archived_at is not None:
            raise invalid_request(f"Project {project_id} is archived and cannot be modified.", param="project_id")
        name = check_string(body, "name", nullable=False)
        if "name" in body and not name.strip():
            raise invalid_request("Invalid 'name': empty string. Expected a non-empty string.", param="name", code="empty_string")
        external_key_id = check_string(body, "external_key_id") if "external_key_id" in body else row.external_key_id
        await self._db.write([(_UPDATE, {"b_id": project_id, "name": name or row.name, "external_key_id": external_key_id})])
        return await self.get(project_id)

    async def archive(self, project_id: str) -> dict:
        await self._row(project_id)
        if await self._db.write([(_ARCHIVE, {"b_id": project_id, "archived_at": int(time.time())})], guard=True):
            await publish_revocation(self._bus, {"project_id": project_id})
        return await self.get(project_id)

    async def find_or_create(self, name_or_id: str) -> tuple[dict, bool]:
        """The CLI's `--project`: an id (`proj_…`), else the oldest active project of that name, else a new one."""
        if name_or_id.startswith("proj_"):
            return project_object(await self._row(name_or_id)), False
        row = await self._db.fetch_one(_BY_NAME, {"name": name_or_id})
        if row is not None:
            return project_object(row), False
        return project_object(await self._insert(name_or_id)), True


async def publish_revocation(bus, event: dict) -> None:
    """Tell every API process (through the event bus) to forget cached keys at once; their cache entries
    expire within a second anyway, so a lost message only delays the revocation by that much."""
    if bus is None:
        return
    try:
        await bus.publish(REVOCATIONS, event)
    except Exception:  # noqa: BLE001 — the revocation is in the database; the caches' TTL finishes the job
        import logging

        logging.getLogger("understudy.auth").exception("could not broadcast a key revocation")
