"""Per-project rate limits: requests and (estimated) tokens per minute.

A project's window opens with its first request and lasts a minute; the request that would pass a limit
is refused (it is not counted). Counters live in Redis when one is configured (team mode: every API
process shares them, through one small Lua script per request) and in memory otherwise. Limits come
from the settings, or from a project's own (a row per project and model, "*" for every model), which
every process re-reads every few seconds. With no limit anywhere, `active` is False and the middleware
does nothing else.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.core.errors import APIError, invalid_request
from app.core.tokens import count_chat_tokens, count_tokens
from storage.db import Database
from storage.usage_tables import ProjectRateLimit

log = logging.getLogger("understudy.rate_limits")

WINDOW_MS = 60_000
ANY_MODEL = "*"
_TABLE = ProjectRateLimit.__table__

# KEYS[1]: the window's hash {r, t}. ARGV: rpm, tpm, tokens, window (ms).
# Returns {allowed (1) | refused on requests (0) | on tokens (-1), requests used, tokens used, ms left}.
_LUA = """
local used = redis.call('HMGET', KEYS[1], 'r', 't')
local r, t = tonumber(used[1] or '0'), tonumber(used[2] or '0')
local rpm, tpm, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then left = tonumber(ARGV[4]) end
if rpm > 0 and r + 1 > rpm then return {0, r, t, left} end
if tpm > 0 and t + n > tpm then return {-1, r, t, left} end
r = redis.call('HINCRBY', KEYS[1], 'r', 1)
t = redis.call('HINCRBY', KEYS[1], 't', n)
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return {1, r, t, left}
"""


class Limits(NamedTuple):
    rpm: int
    tpm: int
    scope: str  # whose counters: a model with its own limits, or "*"


class Decision(NamedTuple):
    allowed: int  # 1, or 0 (requests) / -1 (tokens) when refused
    requests: int  # used in the window, this request included when allowed
    tokens: int
    reset_ms: int


class MemoryCounters:
    def __init__(self) -> None:
        self._windows: dict[str, list] = {}  # key -> [ends_at (monotonic ms), requests, tokens]

    async def take(self, key: str, rpm: int, tpm: int, tokens: int) -> Decision:
        now = time.monotonic() * 1000
        window = self._windows.get(key)
        if window is None or window[0] <= now:
            if len(self._windows) > 100_000:
                self._windows = {k: w for k, w in self._windows.items() if w[0] > now}
            window = self._windows[key] = [now + WINDOW_MS, 0, 0]
        left = int(window[0] - now)
        if rpm and window[1] + 1 > rpm:
            return Decision(0, window[1], window[2], left)
        if tpm and window[2] + tokens > tpm:
            return Decision(-1, window[1], window[2], left)
        window[1] += 1
        window[2] += tokens
        return Decision(1, window[1], window[2], left)

    async def close(self) -> None:
        pass


class RedisCounters:
    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(url)
        self._script = self._redis.register_script(_LUA)

    async def take(self, key: str, rpm: int, tpm: int, tokens: int) -> Decision:
        allowed, requests, used, left = await self._script(keys=[key], args=[rpm, tpm, tokens, WINDOW_MS])
        return Decision(int(allowed), int(requests), int(used), int(left))

    async def close(self) -> None:
        await self._redis.aclose()


class RateLimiter:
    def __init__(self, db: Database, default_rpm: int, default_tpm: int, redis_url: str = "", *, refresh_seconds: float = 5.0) -> None:
        self._db = db
        self._defaults = Limits(default_rpm, default_tpm, ANY_MODEL)
        self._overrides: dict[tuple[str, str], Limits] = {}
        self._counters = RedisCounters(redis_url) if redis_url else MemoryCounters()
        self._refresh_seconds = refresh_seconds
        self._task: asyncio.Task | None = None
        self.active = bool(default_rpm or default_tpm)

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._refresh_periodically())

    async def _refresh_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_seconds)
            try:
                await self.refresh()
            except Exception:
                log.exception("could not read the projects' rate limits")

    async def refresh(self) -> None:
        rows = await self._db.fetch_all(select(_TABLE))
        self._overrides = {(r.project_id, r.model): Limits(r.max_requests_per_1_minute, r.max_tokens_per_1_minute, r.model) for r in rows}
        self.active = bool(self._defaults.rpm or self._defaults.tpm or self._overrides)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        await self._counters.close()

    def limits_for(self, project_id: str, model: str) -> Limits:
        if self._overrides:
            found = self._overrides.get((project_id, model)) or self._overrides.get((project_id, ANY_MODEL))
            if found is not None:
                return found
        return self._defaults

    async def take(self, project_id: str, limits: Limits, tokens: int) -> Decision | None:
        """None when the counters cannot be reached (Redis down): limits fail open rather than fail every call."""
        try:
            return await self._counters.take(f"understudy:rl:{project_id}:{limits.scope}", limits.rpm, limits.tpm, tokens)
        except (OSError, ConnectionError) as error:
            log.warning("rate-limit counters unavailable, not limiting: %s", error)
            return None
        except Exception as error:  # redis.RedisError and its kin
            if type(error).__module__.startswith("redis"):
                log.warning("rate-limit counters unavailable, not limiting: %s", error)
                return None
            raise

    # The admin API (OpenAI's shape: a rate limit per model, id "rl-{model}"; "rl-*" is every model's).

    def _object(self, model: str, limits: Limits) -> dict:
        return {"object": "project.rate_limit", "id": f"rl-{model}", "model": model,
                "max_requests_per_1_minute": limits.rpm, "max_tokens_per_1_minute": limits.tpm}

    async def list(self, project_id: str, limit: int = 100, after: str | None = None) -> dict:
        if not 1 <= limit <= 100:
            raise invalid_request("Invalid 'limit': must be between 1 and 100.", param="limit")
        rows = await self._db.fetch_all(select(_TABLE).where(_TABLE.c.project_id == project_id).order_by(_TABLE.c.model))
        stored = {r.model: Limits(r.max_requests_per_1_minute, r.max_tokens_per_1_minute, r.model) for r in rows}
        items = [self._object(ANY_MODEL, stored.pop(ANY_MODEL, self._defaults))]
        items += [self._object(model, limits) for model, limits in stored.items()]
        if after is not None:
            ids = [item["id"] for item in items]
            items = items[ids.index(after) + 1:] if after in ids else []
        page = items[:limit]
        return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None, "has_more": len(items) > limit}

    async def modify(self, project_id: str, rate_limit_id: str, body: dict) -> dict:
        if not rate_limit_id.startswith("rl-") or len(rate_limit_id) <= 3:
            raise APIError(f"No such rate limit: {rate_limit_id}", status_code=404, param="rate_limit_id")
        model = rate_limit_id[3:]
        await self.refresh()
        current = self._overrides.get((project_id, model)) or self.limits_for(project_id, model)  # what applies now
        values = {"rpm": current.rpm, "tpm": current.tpm}
        for field, name in (("max_requests_per_1_minute", "rpm"), ("max_tokens_per_1_minute", "tpm")):
            if field in body:
                value = body[field]
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise invalid_request(f"Invalid '{field}': expected a non-negative integer.", param=field)
                values[name] = value
        row = {"project_id": project_id, "model": model, "max_requests_per_1_minute": values["rpm"],
               "max_tokens_per_1_minute": values["tpm"], "updated_at": int(time.time())}
        insert = sqlite_insert if self._db.is_sqlite else pg_insert
        statement = insert(_TABLE).values(**row)
        statement = statement.on_conflict_do_update(
            index_elements=["project_id", "model"],
            set_={name: statement.excluded[name] for name in ("max_requests_per_1_minute", "max_tokens_per_1_minute", "updated_at")},
        )
        async with self._db.begin() as conn:
            await conn.execute(statement)
        await self.refresh()
        return self._object(model, Limits(values["rpm"], values["tpm"], model))


def duration(ms: int) -> str:
    """OpenAI's reset durations: "120ms", "1s", "1.5s", "6m0s"."""
    if ms < 1000:
        return f"{max(ms, 0)}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    minutes = int(seconds // 60)
    rest = f"{seconds - minutes * 60:.3f}".rstrip("0").rstrip(".")
    return f"{minutes}m{rest}s"


def retry_after_seconds(ms: int) -> int:
    return max(1, math.ceil(ms / 1000))


def estimate_tokens(kind: str, body: dict) -> int:
    """The tokens a request may use, counted before the call as OpenAI does: its input, plus the most it
    may write (max_tokens and its kin, times n)."""

    if kind == "chat":
        messages = body.get("messages")
        tools = body.get("tools")
        try:
            prompt = count_chat_tokens(messages if isinstance(messages, list) else [], tools if isinstance(tools, list) else None)
        except Exception:  # a malformed request: the handler answers it with a 400
            prompt = count_tokens(_text(messages))
    elif kind == "responses":
        prompt = count_tokens(_text(body.get("input"))) + count_tokens(_text(body.get("instructions")))
    elif kind == "messages":
        prompt = count_tokens(_text(body.get("messages"))) + count_tokens(_text(body.get("system")))
    elif kind == "completions":
        prompt = _prompt_tokens(body.get("prompt"))
    elif kind == "embeddings":
        prompt = _prompt_tokens(body.get("input"))
    else:
        prompt = count_tokens(_text(body.get("prompt")))
    most = 0
    for name in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            most = value
            break
    else:
        if kind == "completions":
            most = 16  # the legacy endpoint's default max_tokens
    n = body.get("n")
    return prompt + most * (n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1)


def _prompt_tokens(value) -> int:
    """A prompt or an embedding input: text, texts, token ids or lists of token ids."""
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return len(value)
    if isinstance(value, list):
        return sum(_prompt_tokens(v) for v in value)
    return count_tokens(value) if isinstance(value, str) else 0


def _text(value) -> str:
    """Every string in a JSON value, joined (image data and file contents are not text)."""
    if isinstance(value, str):
        return value if not value.startswith("data:") else ""
    if isinstance(value, list):
        return "\n".join(filter(None, (_text(v) for v in value)))
    if isinstance(value, dict):
        return "\n".join(filter(None, (_text(v) for k, v in value.items() if k not in ("type", "image_url", "file_data", "data", "id"))))
    return ""
