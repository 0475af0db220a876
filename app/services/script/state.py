"""Where a tenant's scripted rules, their hit counts, its settings and its log of model calls live.

In memory by default (one process makes every model call); in Redis in team mode, where arq workers
make the calls of runs and batches and API processes answer the control API: a rule's `times` and
`nth` count across all of them (HINCRBY is atomic). Model calls read the state on every call, so
both keep that read to a lookup (memory) or one round trip (Redis).

Bounded, since keys come from clients: a rule list per tenant (MAX_RULES), the newest CALLS_KEPT calls
of at most CALL_BYTES each, and in memory a byte budget over all tenants, least recently used out first.
"""
from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Protocol

import msgspec

CALLS_KEPT = 500
CALL_BYTES = 64 * 1024
MEMORY_BUDGET = 256 * 1024 * 1024
REDIS_TTL = 7 * 24 * 3600  # an idle tenant's script is dropped after a week
_encode = msgspec.json.Encoder().encode


@dataclass
class Snapshot:
    """What one model call reads: the tenant's rules (JSON specs, in order) and settings."""
    rules: list[dict]
    settings: dict

    @property
    def active(self) -> bool:
        """Rules, strict mode or `record_calls` on: a setting turned back off scripts nothing."""
        return bool(self.rules) or bool(self.settings.get("strict")) or bool(self.settings.get("record_calls"))


EMPTY = Snapshot([], {})


class ScriptState(Protocol):
    name: str

    async def snapshot(self, tenant: str) -> Snapshot: ...

    async def add_rules(self, tenant: str, specs: list[dict], limit: int) -> bool:
        """Appends `specs`; False (nothing added) when the tenant would hold more than `limit`."""

    async def delete_rule(self, tenant: str, rule_id: str) -> bool: ...

    async def clear_rules(self, tenant: str) -> None: ...

    async def hit(self, tenant: str, rule_id: str) -> int:
        """Counts one more call matching the rule; returns the count (1 for the first)."""

    async def hits(self, tenant: str) -> dict[str, int]: ...

    async def set_settings(self, tenant: str, settings: dict) -> None: ...

    async def record(self, tenant: str, call: bytes) -> None: ...

    async def calls(self, tenant: str) -> list[bytes]: ...

    async def clear_calls(self, tenant: str) -> None: ...

    async def close(self) -> None: ...


@dataclass
class _Tenant:
    rules: list[dict] = field(default_factory=list)
    rule_bytes: int = 0
    hits: dict[str, int] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    calls: deque = field(default_factory=lambda: deque(maxlen=CALLS_KEPT))
    call_bytes: int = 0

    @property
    def size(self) -> int:
        return self.rule_bytes + self.call_bytes + 64 * len(self.hits) + 1024


class MemoryScriptState:
    name = "memory"

    def __init__(self, budget: int = MEMORY_BUDGET) -> None:
        self._tenants: OrderedDict[str, _Tenant] = OrderedDict()
        self._budget = budget
        self._bytes = 0

    def _get(self, tenant: str, create: bool = False) -> _Tenant | None:
        state = self._tenants.get(tenant)
        if state is None and create:
            state = self._tenants[tenant] = _Tenant()
            self._bytes += state.size
        if state is not None:
            self._tenants.move_to_end(tenant)
        return state

    def _resized(self, state: _Tenant, before: int) -> None:
        self._bytes += state.size - before
        while self._bytes > self._budget and len(self._tenants) > 1:
            _, dropped = self._tenants.popitem(last=False)
            self._bytes -= dropped.size

    async def snapshot(self, tenant: str) -> Snapshot:
        state = self._tenants.get(tenant)
        return EMPTY if state is None else Snapshot(state.rules, state.settings)

    async def add_rules(self, tenant: str, specs: list[dict], limit: int) -> bool:
        state = self._get(tenant, create=True)
        if len(state.rules) + len(specs) > limit:
            return False
        before = state.size
        state.rules = [*state.rules, *specs]  # a new list: a snapshot being matched is never changed under it
        state.rule_bytes += sum(len(_encode(spec)) for spec in specs)
        self._resized(state, before)
        return True

    async def delete_rule(self, tenant: str, rule_id: str) -> bool:
        state = self._get(tenant)
        if state is None or not any(rule["id"] == rule_id for rule in state.rules):
            return False
        before = state.size
        state.rules = [rule for rule in state.rules if rule["id"] != rule_id]
        state.rule_bytes = sum(len(_encode(spec)) for spec in state.rules)
        state.hits.pop(rule_id, None)
        self._resized(state, before)
        return True

    async def clear_rules(self, tenant: str) -> None:
        state = self._get(tenant)
        if state is not None:
            before = state.size
            state.rules, state.rule_bytes, state.hits = [], 0, {}
            self._resized(state, before)

    async def hit(self, tenant: str, rule_id: str) -> int:
        state = self._get(tenant, create=True)
        count = state.hits[rule_id] = state.hits.get(rule_id, 0) + 1
        return count

    async def hits(self, tenant: str) -> dict[str, int]:
        state = self._tenants.get(tenant)
        return dict(state.hits) if state is not None else {}

    async def set_settings(self, tenant: str, settings: dict) -> None:
        self._get(tenant, create=True).settings = settings

    async def record(self, tenant: str, call: bytes) -> None:
        state = self._get(tenant, create=True)
        before = state.size
        if len(state.calls) == CALLS_KEPT:
            state.call_bytes -= len(state.calls[0])
        state.calls.append(call)
        state.call_bytes += len(call)
        self._resized(state, before)

    async def calls(self, tenant: str) -> list[bytes]:
        state = self._tenants.get(tenant)
        return list(state.calls) if state is not None else []

    async def clear_calls(self, tenant: str) -> None:
        state = self._get(tenant)
        if state is not None:
            before = state.size
            state.calls.clear()
            state.call_bytes = 0
            self._resized(state, before)

    async def close(self) -> None:
        pass


class RedisScriptState:
    name = "redis"

    def __init__(self, url: str) -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(url)

    @staticmethod
    def _key(tenant: str, part: str) -> str:
        return f"understudy:script:{tenant}:{part}"

    async def snapshot(self, tenant: str) -> Snapshot:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.lrange(self._key(tenant, "rules"), 0, -1)
            pipe.get(self._key(tenant, "settings"))
            rules, settings = await pipe.execute()
        if not rules and not settings:
            return EMPTY
        return Snapshot([msgspec.json.decode(r) for r in rules], msgspec.json.decode(settings) if settings else {})

    async def add_rules(self, tenant: str, specs: list[dict], limit: int) -> bool:
        key = self._key(tenant, "rules")
        # One script: the count check and the append cannot interleave with another process's.
        added = await self._redis.eval(
            "if redis.call('LLEN', KEYS[1]) + #ARGV - 1 > tonumber(ARGV[1]) then return 0 end "
            "for i = 2, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end "
            "redis.call('EXPIRE', KEYS[1], " + str(REDIS_TTL) + ") return 1",
            1, key, limit, *[_encode(spec) for spec in specs])
        return bool(added)

    async def delete_rule(self, tenant: str, rule_id: str) -> bool:
        key = self._key(tenant, "rules")
        for raw in await self._redis.lrange(key, 0, -1):
            if msgspec.json.decode(raw).get("id") == rule_id:
                removed = await self._redis.lrem(key, 1, raw)
                await self._redis.hdel(self._key(tenant, "hits"), rule_id)
                return bool(removed)
        return False

    async def clear_rules(self, tenant: str) -> None:
        await self._redis.delete(self._key(tenant, "rules"), self._key(tenant, "hits"))

    async def hit(self, tenant: str, rule_id: str) -> int:
        key = self._key(tenant, "hits")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(key, rule_id, 1)
            pipe.expire(key, REDIS_TTL)
            count, _ = await pipe.execute()
        return int(count)

    async def hits(self, tenant: str) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in (await self._redis.hgetall(self._key(tenant, "hits"))).items()}

    async def set_settings(self, tenant: str, settings: dict) -> None:
        await self._redis.set(self._key(tenant, "settings"), _encode(settings), ex=REDIS_TTL)

    async def record(self, tenant: str, call: bytes) -> None:
        key = self._key(tenant, "calls")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, call)
            pipe.ltrim(key, -CALLS_KEPT, -1)
            pipe.expire(key, REDIS_TTL)
            await pipe.execute()

    async def calls(self, tenant: str) -> list[bytes]:
        return list(await self._redis.lrange(self._key(tenant, "calls"), 0, -1))

    async def clear_calls(self, tenant: str) -> None:
        await self._redis.delete(self._key(tenant, "calls"))

    async def close(self) -> None:
        await self._redis.aclose()
