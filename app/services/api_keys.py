"""Issued API keys: project keys (`sk-proj-…`, bound to a project; the only keys that work in keys mode)
and admin keys (`sk-admin-…`, for /v1/organization/*). A key's secret is shown once, when it is issued;
only its sha256 and a redacted form are stored. Deleting a key revokes it in every API process.
"""
from __future__ import annotations

import hashlib
import secrets
import string
import time

from sqlalchemy import bindparam, delete, insert, select, update

from app.core.errors import invalid_request, not_found
from app.core.ids import new_id
from app.core.pagination import Page, fetch_page, list_body
from app.services.projects import ProjectsService, check_fields, check_string, publish_revocation
from storage.db import Database
from storage.models import ApiKey
from storage.prepared import Prepared

keys = ApiKey.__table__
PROJECT_PREFIX, ADMIN_PREFIX = "sk-proj-", "sk-admin-"
_ALPHABET = string.ascii_letters + string.digits + "-_"
MAX_EXPIRY = 365 * 24 * 3600
# How often last_used_at is written for one key: not on every request.
LAST_USED_RESOLUTION = 60

_GET = Prepared(select(keys).where(keys.c.id == bindparam("id"), keys.c.kind == bindparam("kind")))
_GET_ANY = Prepared(select(keys).where(keys.c.id == bindparam("id")))
_BY_HASH = Prepared(select(keys).where(keys.c.key_hash == bindparam("key_hash"), keys.c.kind == bindparam("kind")))
_ALL = Prepared(select(keys).order_by(keys.c.seq))
_INSERT = Prepared(insert(keys))
_DELETE = Prepared(delete(keys).where(keys.c.id == bindparam("id")))
_TOUCH = Prepared(update(keys).where(keys.c.id == bindparam("b_id")).values(last_used_at=bindparam("now")))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_secret(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(64))


def redact(key: str, prefix: str) -> str:
    """OpenAI's `sk-abc...def` form: the prefix, a few characters, and the last four."""
    return f"{key[:len(prefix) + 3]}...{key[-4:]}"


def project_key_object(row) -> dict:
    return {
        "object": "organization.project.api_key",
        "redacted_value": row.redacted_value,
        "name": row.name or "Secret key",
        "created_at": row.created_at,
        "last_used_at": row.last_used_at,
        "id": row.id,
        "owner_project_access": "active",
        # Understudy has no users: a key issued by an admin belongs to a service account of its own.
        "owner": {
            "type": "service_account",
            "service_account": {"id": "svc_acct_" + row.id.removeprefix("key_"), "name": row.name or "Secret key",
                                "created_at": row.created_at, "role": "member"},
        },
    }


def admin_key_object(row) -> dict:
    return {
        "object": "organization.admin_api_key",
        "id": row.id,
        "name": row.name,
        "redacted_value": row.redacted_value,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "last_used_at": row.last_used_at,
        "owner": {"type": "user", "object": "organization.user", "id": "user_understudy_admin", "name": "Understudy admin",
                  "created_at": row.created_at, "role": "owner"},
    }


def _expires_in(body: dict) -> int | None:
    value = body.get("expires_in_seconds")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid_request("Invalid type for 'expires_in_seconds': expected an integer.", param="expires_in_seconds", code="invalid_type")
    if not 1 <= value <= MAX_EXPIRY:
        raise invalid_request(f"Invalid 'expires_in_seconds': expected a value between 1 and {MAX_EXPIRY}, but got {value} instead.",
                              param="expires_in_seconds", code="integer_out_of_range")
    return value


class ApiKeysService:
    def __init__(self, db: Database, bus=None) -> None:
        self._db = db
        self._bus = bus
        self.projects = ProjectsService(db, bus)

    async def _issue(self, kind: str, prefix: str, project_id: str | None, name: str | None, expires_in: int | None):
        secret = new_secret(prefix)
        now = int(time.time())
        values = {
            "id": new_id("key_"), "kind": kind, "project_id": project_id, "name": name, "key_hash": hash_key(secret),
            "redacted_value": redact(secret, prefix), "created_at": now, "last_used_at": None,
            "expires_at": now + expires_in if expires_in else None,
        }
        await self._db.write([(_INSERT, values)])
        return await self._db.fetch_one(_GET_ANY, {"id": values["id"]}), secret

    async def _get(self, kind: str, key_id: str, project_id: str | None = None):
        row = await self._db.fetch_one(_GET, {"id": key_id, "kind": kind})
        if row is None or (project_id is not None and row.project_id != project_id):
            raise not_found("ProjectApiKey" if kind == "project" else "AdminApiKey", key_id, param="api_key_id" if kind == "project" else "key_id")
        return row

    # -- project keys ---------------------------------------------------------------------------------
    async def issue_project_key(self, project_id: str, body: dict) -> dict:
        """Understudy's extension (OpenAI's admin API cannot issue project keys): the ProjectApiKey plus `value`."""
        check_fields(body, ("name", "expires_in_seconds"))
        name = check_string(body, "name")
        expires_in = _expires_in(body)
        project = await self.projects.row(project_id)
        if project.archived_at is not None:
            raise invalid_request(f"Project {project_id} is archived: it cannot have new keys.", param="project_id")
        row, secret = await self._issue("project", PROJECT_PREFIX, project_id, name, expires_in)
        return {**project_key_object(row), "value": secret}

    async def list_project_keys(self, project_id: str, page: Page) -> dict:
        await self.projects.row(project_id)
        rows, has_more = await fetch_page(self._db, keys, page, {"kind": "project", "project_id": project_id})
        return list_body([project_key_object(row) for row in rows], has_more)

    async def get_project_key(self, project_id: str, key_id: str) -> dict:
        await self.projects.row(project_id)
        return project_key_object(await self._get("project", key_id, project_id))

    async def delete_project_key(self, project_id: str, key_id: str) -> dict:
        await self.projects.row(project_id)
        await self._get("project", key_id, project_id)
        await self.revoke(key_id)
        return {"object": "organization.project.api_key.deleted", "id": key_id, "deleted": True}

    # -- admin keys -----------------------------------------------------------------------------------
    async def create_admin_key(self, body: dict) -> dict:
        check_fields(body, ("name", "expires_in_seconds"))
        name = check_string(body, "name", required=True)
        row, secret = await self._issue("admin", ADMIN_PREFIX, None, name, _expires_in(body))
        return {**admin_key_object(row), "value": secret}

    async def list_admin_keys(self, page: Page) -> dict:
        rows, has_more = await fetch_page(self._db, keys, page, {"kind": "admin"})
        return list_body([admin_key_object(row) for row in rows], has_more)

    async def get_admin_key(self, key_id: str) -> dict:
        return admin_key_object(await self._get("admin", key_id))

    async def delete_admin_key(self, key_id: str) -> dict:
        await self._get("admin", key_id)
        await self.revoke(key_id)
        return {"object": "organization.admin_api_key.deleted", "id": key_id, "deleted": True}

    async def is_admin_key(self, key: str) -> bool:
        """An issued, unexpired admin key (read from the database on every call: admin calls are rare,
        and a deleted admin key stops working at once)."""
        if not key.startswith(ADMIN_PREFIX):
            return False
        row = await self._db.fetch_one(_BY_HASH, {"key_hash": hash_key(key), "kind": "admin"})
        now = int(time.time())
        if row is None or (row.expires_at is not None and row.expires_at <= now):
            return False
        if row.last_used_at is None or row.last_used_at <= now - LAST_USED_RESOLUTION:
            await self._db.write([(_TOUCH, {"b_id": row.id, "now": now})])
        return True

    # -- the CLI --------------------------------------------------------------------------------------
    async def issue_for_project(self, project: str, name: str | None = None) -> tuple[dict, dict, str]:
        """`understudy keys create --project NAME`: the project (created if new), the key, its secret."""
        project_body, _ = await self.projects.find_or_create(project)
        if project_body["archived_at"] is not None:
            raise invalid_request(f"Project {project} is archived: it cannot have new keys.", param="project")
        body = await self.issue_project_key(project_body["id"], {"name": name} if name else {})
        return project_body, body, body["value"]

    async def issue_admin(self, name: str) -> tuple[dict, str]:
        body = await self.create_admin_key({"name": name})
        return body, body["value"]

    async def all_keys(self) -> list:
        return await self._db.fetch_all(_ALL)

    async def revoke(self, key_id: str) -> bool:
        """Deletes the key (of either kind) and tells every API process to forget it."""
        row = await self._db.fetch_one(_GET_ANY, {"id": key_id})
        if row is None:
            return False
        await self._db.write([(_DELETE, {"id": key_id})])
        await publish_revocation(self._bus, {"key_id": key_id, "project_id": None})
        return True
