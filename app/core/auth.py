"""API keys -> tenants.

Open mode (the default): any key that starts with `sk-` is accepted and each distinct key is its own
tenant, created on first use. Only the key's sha256 is stored. Resolved keys are cached in memory: this
runs on every request.

Keys mode (teams): only project keys issued by `understudy keys` or the admin API work, and a key's tenant
is its project's id (`proj_…`), so every key of a project sees the project's objects. A resolved key is
cached for at most `KEYS_TTL` seconds, and revocations (key deleted, project archived) are broadcast on the
event bus so every API process forgets the key at once: a warm cache costs no query, and a revoked key
is refused everywhere within a second even if the broadcast is lost (or the CLI revoked it without Redis).
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import time

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.core.errors import APIError
from app.core.ids import new_id
from app.core.lru import LRU
from storage.db import Database
from storage.models import ApiKey, Project, Tenant
from storage.prepared import Prepared

log = logging.getLogger("understudy.auth")
# Resolved (and refused) keys kept in memory: bounded by count and by bytes, least recently used out.
CACHE_ENTRIES, CACHE_BYTES = 100_000, 32 * 1024 * 1024
# OpenAI's keys are well under 200 characters; a longer one is refused before anything looks it up.
MAX_KEY_CHARS = 200
# The event-bus channel of revocations: {"key_id": …} or {"project_id": …}.
REVOCATIONS = "auth.revocations"
KEYS_TTL = 1.0
LAST_USED_RESOLUTION = 60
MODES = ("open", "keys")

_keys, _projects = ApiKey.__table__, Project.__table__
_PROJECT_KEY = Prepared(
    select(_keys.c.id, _keys.c.project_id, _keys.c.expires_at, _keys.c.last_used_at)
    .select_from(_keys.join(_projects, _projects.c.id == _keys.c.project_id))
    .where(_keys.c.key_hash == bindparam("key_hash"), _keys.c.kind == "project", _projects.c.archived_at.is_(None))
)
_TOUCH = Prepared(update(_keys).where(_keys.c.id == bindparam("b_id")).values(last_used_at=bindparam("now")))

MISSING_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using "
    "Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the x-api-key header."
)


def key_from_headers(authorization: str | None, x_api_key: str | None) -> str:
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise APIError(
                "Malformed Authorization header: expected 'Bearer YOUR_KEY'.", status_code=401, code="invalid_api_key"
            )
        return _bounded(token.strip())
    if x_api_key:
        return _bounded(x_api_key.strip())
    raise APIError(MISSING_KEY, status_code=401)


def _bounded(key: str) -> str:
    if len(key) > MAX_KEY_CHARS:
        raise APIError(f"Incorrect API key provided: {_redacted(key)}. API keys are at most {MAX_KEY_CHARS} characters.",
                       status_code=401, code="invalid_api_key")
    return key


def _redacted(key: str) -> str:
    return key[:3] + "*" * 6 + key[-4:] if len(key) > 8 else "*" * len(key)


def _incorrect(key: str) -> APIError:
    return APIError(
        f"Incorrect API key provided: {_redacted(key)}. Ask your Understudy administrator for a key "
        "(`understudy keys create --project NAME`).",
        status_code=401,
        code="invalid_api_key",
    )


class Authenticator:
    def __init__(self, db: Database, mode: str = "open", bus=None, *, keys_ttl: float = KEYS_TTL) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown auth mode {mode!r} (expected 'open' or 'keys')")
        self.mode = mode
        self._db = db
        self._bus = bus
        self._keys_ttl = keys_ttl
        self._tenants: LRU[str] = LRU(CACHE_ENTRIES, CACHE_BYTES)
        # keys mode: key -> (project id, monotonic deadline, key id)
        self._project_keys: LRU[tuple[str, float, str]] = LRU(CACHE_ENTRIES, CACHE_BYTES)
        # keys mode: unknown keys -> monotonic deadline (a flood of bad keys costs one query per key per TTL)
        self._refused: LRU[float] = LRU(CACHE_ENTRIES, CACHE_BYTES)
        self._listener: asyncio.Task | None = None

    async def tenant_for_key(self, key: str) -> str:
        """`key` comes from `key_from_headers`, which already refused an overlong one."""
        if self.mode == "keys":
            entry = self._project_keys.get(key)
            if entry is not None and entry[1] > time.monotonic():
                return entry[0]
            refused = self._refused.get(key)
            if refused is not None and refused > time.monotonic():
                raise _incorrect(key)  # a key never becomes valid later (issued keys are random): no query
            return await self._project_for_key(key)
        tenant = self._tenants.get(key)
        if tenant is not None:
            return tenant
        if not key.startswith("sk-") or len(key) < 4:
            raise APIError(
                f"Incorrect API key provided: {_redacted(key)}. Keys start with 'sk-'.",
                status_code=401,
                code="invalid_api_key",
            )
        tenant = await self._provision(hashlib.sha256(key.encode()).hexdigest())
        self._tenants[key] = tenant
        return tenant

    async def _provision(self, key_hash: str) -> str:
        table = Tenant.__table__
        lookup = select(table.c.id).where(table.c.key_hash == key_hash)
        async with self._db.connect() as conn:
            found = (await conn.execute(lookup)).scalar()
        if found:
            return found
        try:
            async with self._db.begin() as conn:
                tenant_id = new_id("tenant_")
                await conn.execute(insert(table).values(id=tenant_id, key_hash=key_hash, created_at=int(time.time())))
                return tenant_id
        except IntegrityError:  # another request (or process) provisioned the same key first
            async with self._db.connect() as conn:
                return (await conn.execute(lookup)).scalar_one()

    # -- keys mode ------------------------------------------------------------------------------------
    async def _project_for_key(self, key: str) -> str:
        if self._listener is None and self._bus is not None:
            self._listener = asyncio.create_task(self._listen(), name="auth-revocations")
        self._project_keys.pop(key, None)
        if not key.startswith("sk-"):
            raise _incorrect(key)
        now = int(time.time())
        # Read after taking the deadline: an entry never outlives a revocation committed after this read
        # by more than the TTL.
        deadline = time.monotonic() + self._keys_ttl
        row = await self._db.fetch_one(_PROJECT_KEY, {"key_hash": hashlib.sha256(key.encode()).hexdigest()})
        if row is None or (row.expires_at is not None and row.expires_at <= now):
            self._refused[key] = deadline
            raise _incorrect(key)
        if row.last_used_at is None or row.last_used_at <= now - LAST_USED_RESOLUTION:
            try:
                await self._db.write([(_TOUCH, {"b_id": row.id, "now": now})])
            except Exception:  # noqa: BLE001 — bookkeeping must not fail a request
                log.exception("could not record a key's last use")
        self._project_keys[key] = (row.project_id, deadline, row.id)
        return row.project_id

    def key_id(self, key: str) -> str:
        """The issued key's id (keys mode, once `tenant_for_key` resolved it); "" otherwise."""
        entry = self._project_keys.get(key)
        return entry[2] if entry is not None else ""

    def forget(self, event: dict) -> None:
        """Drops cached keys matching a revocation event ({"key_id"} and/or {"project_id"})."""
        key_id, project_id = event.get("key_id"), event.get("project_id")
        stale = [k for k, (project, _, kid) in self._project_keys.items() if kid == key_id or (project_id and project == project_id)]
        for key in stale:
            self._project_keys.pop(key, None)

    async def _listen(self) -> None:
        while True:
            try:
                async with self._bus.subscribe(REVOCATIONS) as subscription:
                    async for event in subscription:
                        if isinstance(event, dict):
                            self.forget(event)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 — the TTL still bounds how long a revoked key lives
                log.exception("auth: listening for revocations failed; retrying")
                await asyncio.sleep(1)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            self._listener = None
