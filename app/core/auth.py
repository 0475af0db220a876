"""API keys -> tenants.

Open mode (the default): any key that starts with `sk-` is accepted and each distinct key is its own
tenant, created on first use. Only the key's sha256 is stored. Resolved keys are cached in memory: this
runs on every request.
"""
from __future__ import annotations

import hashlib
import time

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from app.core.errors import APIError
from app.core.ids import new_id
from storage.db import Database
from storage.models import Tenant

_CACHE_LIMIT = 100_000

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
        return token.strip()
    if x_api_key:
        return x_api_key.strip()
    raise APIError(MISSING_KEY, status_code=401)


def _redacted(key: str) -> str:
    return key[:3] + "*" * 6 + key[-4:] if len(key) > 8 else "*" * len(key)


class Authenticator:
    def __init__(self, db: Database, mode: str = "open") -> None:
        if mode != "open":
            raise ValueError(f"auth mode {mode!r} is not available yet (only 'open')")
        self._db = db
        self._tenants: dict[str, str] = {}

    async def tenant_for_key(self, key: str) -> str:
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
        if len(self._tenants) >= _CACHE_LIMIT:
            self._tenants.clear()
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
