"""Realtime client secrets (`ek_…`): short-lived keys a browser or phone may hold, which open a Realtime
socket for exactly the tenant (and issued key) that made them, with the session configuration they were
made with. They are nothing else: the HTTP API's key check refuses any key that is not an `sk-` key.

Only the secret's sha256 is stored, with what it grants, until it expires: in memory (one API process), or
in Redis in team mode, where any API process may be asked to open the socket.
"""
from __future__ import annotations

import hashlib
import time
from typing import Protocol

import msgspec

from app.core.errors import APIError, invalid_request
from app.core.ids import new_id
from app.core.lru import LRU

PREFIX = "ek_"
DEFAULT_TTL, MIN_TTL, MAX_TTL = 600, 10, 7200  # OpenAI's expires_after.seconds: default and range
_REDIS_PREFIX = "understudy:realtime:ek:"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class SecretStore(Protocol):
    name: str

    async def put(self, digest: str, grant: bytes, ttl: int) -> None: ...

    async def get(self, digest: str) -> bytes | None: ...

    async def close(self) -> None: ...


class MemorySecrets:
    name = "memory"

    def __init__(self) -> None:
        self._grants: LRU[tuple[bytes, float]] = LRU(100_000, 64 * 1024 * 1024)

    async def put(self, digest: str, grant: bytes, ttl: int) -> None:
        self._grants[digest] = (grant, time.monotonic() + ttl)

    async def get(self, digest: str) -> bytes | None:
        entry = self._grants.get(digest)
        if entry is None or entry[1] <= time.monotonic():
            self._grants.pop(digest, None)
            return None
        return entry[0]

    async def close(self) -> None:
        pass


class RedisSecrets:
    name = "redis"

    def __init__(self, url: str) -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(url)

    async def put(self, digest: str, grant: bytes, ttl: int) -> None:
        await self._redis.set(_REDIS_PREFIX + digest, grant, ex=ttl)

    async def get(self, digest: str) -> bytes | None:
        return await self._redis.get(_REDIS_PREFIX + digest)

    async def close(self) -> None:
        await self._redis.aclose()


class Grant(msgspec.Struct):
    tenant: str
    key_id: str
    session: dict
    expires_at: int


class ClientSecrets:
    def __init__(self, store: SecretStore) -> None:
        self.store = store

    async def create(self, tenant: str, key_id: str, session: dict, expires_after: dict | None) -> tuple[str, int]:
        """A new secret for `session` (already checked), and when it expires (epoch seconds)."""
        ttl = DEFAULT_TTL
        if expires_after is not None:
            anchor = expires_after.get("anchor", "created_at")
            if anchor != "created_at":
                raise invalid_request(f"Invalid value: '{anchor}'. Supported values are: 'created_at'.", param="expires_after.anchor", code="invalid_value")
            ttl = expires_after.get("seconds", DEFAULT_TTL)
            if isinstance(ttl, bool) or not isinstance(ttl, int) or not MIN_TTL <= ttl <= MAX_TTL:
                raise invalid_request(f"Invalid 'expires_after.seconds': expected an integer between {MIN_TTL} and {MAX_TTL}, but got {ttl!r} instead.",
                                      param="expires_after.seconds", code="invalid_value")
        value = PREFIX + new_id("", 32)
        expires_at = int(time.time()) + ttl
        await self.store.put(_digest(value), msgspec.json.encode(Grant(tenant, key_id, session, expires_at)), ttl)
        return value, expires_at

    async def redeem(self, value: str) -> Grant:
        """What an unexpired secret grants; 401 for an unknown or expired one."""
        raw = await self.store.get(_digest(value)) if value.startswith(PREFIX) and len(value) <= 200 else None
        grant = msgspec.json.decode(raw, type=Grant) if raw is not None else None
        if grant is None or grant.expires_at <= time.time():
            shown = value[:6] + "*" * 6 + value[-4:] if len(value) > 10 else "*" * len(value)
            raise APIError(f"Incorrect API key provided: {shown}. The client secret is unknown or has expired.",
                           status_code=401, code="invalid_api_key")
        return grant
