"""Usage records per project and model, in one-minute buckets, and OpenAI's usage report over them.

Recording happens on every model call, so it is a few dict operations in memory: sums per (minute,
kind, project, model, API key, batch) wait in a dict that a background task upserts about once a
second (one transaction for everything pending), adding to the row another process may have written.
A report flushes this process's pending sums first, so what this process served is visible at once.
"""
from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy import and_, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.core.caller import calling_key, in_batch
from app.core.errors import invalid_request
from storage.db import Database
from storage.usage_tables import UsageBucket

log = logging.getLogger("understudy.usage")


_TABLE = UsageBucket.__table__
_KEY = ("start_time", "kind", "project_id", "model", "api_key_id", "batch")
_SUMS = ("input_tokens", "output_tokens", "input_cached_tokens", "num_model_requests")
WIDTHS = {"1m": 60, "1h": 3600, "1d": 86400}
# OpenAI's default and largest number of buckets per page, by bucket width.
_LIMITS = {"1m": (60, 1440), "1h": (24, 168), "1d": (7, 31)}
GROUPS = {"project_id", "model", "api_key_id", "batch", "user_id", "service_tier"}
RESULT_OBJECTS = {"completions": "organization.usage.completions.result", "embeddings": "organization.usage.embeddings.result"}


class UsageRecorder:
    def __init__(self, db: Database, *, flush_interval: float = 1.0) -> None:
        self._db = db
        self._interval = flush_interval
        self._pending: dict[tuple, list[int]] = {}
        self._task: asyncio.Task | None = None
        self._flushing = asyncio.Lock()

    def metered(self, kind: str, project_id: str, model: str):
        """For a relayed call: records it with the usage read from the relayed body."""
        api_key_id = calling_key.get()
        return lambda usage: self.record(kind, project_id, model, usage, api_key_id)

    def record(self, kind: str, project_id: str, model: str, usage: dict | None, api_key_id: str = "") -> None:
        """One model request and its usage (chat or embeddings shape; None: the tokens are unknown)."""
        key = (int(time.time()) // 60 * 60, kind, project_id, model or "", api_key_id or calling_key.get(), in_batch.get())
        sums = self._pending.get(key)
        if sums is None:
            sums = self._pending[key] = [0, 0, 0, 0]
        sums[3] += 1
        if usage:
            sums[0] += usage.get("prompt_tokens") or 0
            sums[1] += usage.get("completion_tokens") or 0
            details = usage.get("prompt_tokens_details")
            if details:
                sums[2] += details.get("cached_tokens") or 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except Exception:  # the sums are kept for the next attempt
                log.exception("could not write usage records")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        try:
            await self.flush()
        except Exception:
            log.exception("could not write the last usage records")

    async def flush(self) -> None:
        async with self._flushing:
            if not self._pending:
                return
            pending, self._pending = self._pending, {}
            rows = [dict(zip(_KEY, key), **dict(zip(_SUMS, sums))) for key, sums in pending.items()]
            insert = sqlite_insert if self._db.is_sqlite else pg_insert
            statement = insert(_TABLE)
            statement = statement.on_conflict_do_update(
                index_elements=list(_KEY), set_={name: _TABLE.c[name] + statement.excluded[name] for name in _SUMS}
            )
            try:
                async with self._db.begin() as conn:
                    for row in rows:  # one statement per row: a multi-row upsert may not touch one row twice
                        await conn.execute(statement, row)
            except BaseException:
                for key, sums in pending.items():  # back into the queue, with whatever arrived meanwhile
                    kept = self._pending.setdefault(key, [0, 0, 0, 0])
                    for i, value in enumerate(sums):
                        kept[i] += value
                raise

    async def report(self, kind: str, query: dict) -> dict:
        """OpenAI's UsageResponse for /v1/organization/usage/{kind}; `query` holds the request's parameters."""
        await self.flush()
        start_time = _int(query, "start_time", required=True)
        end_time = _int(query, "end_time") or int(time.time()) + 1
        width_name = _one(query, "bucket_width") or "1d"
        if width_name not in WIDTHS:
            raise invalid_request(f"Invalid value: '{width_name}'. Supported values are: '1m', '1h' and '1d'.", param="bucket_width")
        width = WIDTHS[width_name]
        default_limit, max_limit = _LIMITS[width_name]
        limit = _int(query, "limit") or default_limit
        if not 1 <= limit <= max_limit:
            raise invalid_request(f"Invalid 'limit': must be between 1 and {max_limit} for bucket_width {width_name}.", param="limit")
        group_by = _many(query, "group_by")
        for name in group_by:
            if name not in GROUPS:
                raise invalid_request(f"Invalid value for 'group_by': '{name}'.", param="group_by")
        first = start_time - start_time % width
        page = _one(query, "page")
        if page:
            try:
                first = int(page)
            except ValueError:
                raise invalid_request("Invalid 'page': use the next_page of a previous answer.", param="page") from None
        starts = []
        bucket = first
        while bucket < end_time and len(starts) < limit:
            starts.append(bucket)
            bucket += width
        has_more = bucket < end_time
        low, high = max(first, start_time - start_time % 60), min(bucket, end_time)
        conditions = [_TABLE.c.kind == kind, _TABLE.c.start_time >= low, _TABLE.c.start_time < high]
        for name, column in (("project_ids", "project_id"), ("models", "model"), ("api_key_ids", "api_key_id")):
            values = _many(query, name)
            if values:
                conditions.append(_TABLE.c[column].in_(values))
        batch = _one(query, "batch")
        if batch is not None:
            conditions.append(_TABLE.c.batch == (batch.lower() in ("true", "1")))
        # Summed in the database, per bucket and group (the bucket's start inlined: the same expression in
        # SELECT and GROUP BY, which PostgreSQL insists on).
        bucket_of = (_TABLE.c.start_time - (_TABLE.c.start_time - literal_column(str(int(first)))) % literal_column(str(width))).label("bucket")
        columns = [_TABLE.c[name] for name in group_by if name in _TABLE.c]
        statement = (select(bucket_of, *columns, *(func.sum(_TABLE.c[name]).label(name) for name in _SUMS))
                     .where(and_(*conditions)).group_by(bucket_of, *columns))
        rows = await self._db.fetch_all(statement) if starts else []
        grouped: dict[int, dict[tuple, list[int]]] = {s: {} for s in starts}
        for row in rows:
            group = tuple(_group_value(row, name) for name in group_by)
            sums = grouped[int(row.bucket)].setdefault(group, [0, 0, 0, 0])
            for i, name in enumerate(_SUMS):
                sums[i] += int(getattr(row, name))
        data = [
            {"object": "bucket", "start_time": s, "end_time": s + width,
             "results": [_result(kind, group_by, group, grouped[s][group]) for group in sorted(grouped[s], key=repr)]}
            for s in starts
        ]
        return {"object": "page", "data": data, "has_more": has_more, "next_page": str(bucket) if has_more else None}


def _group_value(row, name: str):
    if name in ("user_id", "service_tier"):
        return None
    value = getattr(row, name)
    if name == "batch":
        return bool(value)
    return None if name == "api_key_id" and not value else value


def _result(kind: str, group_by: list[str], group: tuple, sums: list[int]) -> dict:
    result: dict = {"object": RESULT_OBJECTS[kind], "input_tokens": sums[0]}
    if kind == "completions":
        result.update(output_tokens=sums[1], input_cached_tokens=sums[2], input_uncached_tokens=sums[0] - sums[2],
                      input_audio_tokens=0, output_audio_tokens=0)
    result["num_model_requests"] = sums[3]
    names = ("project_id", "user_id", "api_key_id", "model") + (("batch", "service_tier") if kind == "completions" else ())
    for name in names:
        result[name] = group[group_by.index(name)] if name in group_by else None
    return result


def _one(query: dict, name: str) -> str | None:
    values = _many(query, name)
    return values[-1] if values else None


def _many(query: dict, name: str) -> list[str]:
    values = list(query.get(name) or []) + list(query.get(f"{name}[]") or [])
    return [v for value in values for v in value.split(",") if v]


def _int(query: dict, name: str, *, required: bool = False) -> int | None:
    value = _one(query, name)
    if value is None:
        if required:
            raise invalid_request(f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
        return None
    try:
        return int(value)
    except ValueError:
        raise invalid_request(f"Invalid '{name}': expected an integer.", param=name) from None
