"""Traces from the Agents SDK's tracing exporter (`POST /v1/traces/ingest`), kept per tenant and read back
through Understudy's own endpoints (`/_understudy/v1/traces…`): OpenAI shows them only in its dashboard,
so a test or a developer offline can see here what an agent did.

The exporter (`BackendSpanExporter`, `OpenAITracingExporter` in JS) posts `{"data": [...]}`: finished
traces (`object: "trace"`) and spans (`object: "trace.span"`) as their `export()` gives them, and retries
on 5xx. Ids are the client's, so re-sent items are ignored rather than duplicated, and a span may arrive
before its trace, or without one. Each tenant keeps its newest `keep_traces` traces and `keep_spans` spans.
"""
from __future__ import annotations

import time
from typing import Any, Dict, List, Literal, Optional, Union

from sqlalchemy import bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from typing_extensions import Required, TypedDict

from app.core.errors import invalid_request, not_found
from app.core.pagination import Page, fetch_page, list_body
from app.core.validation import validated
from storage.db import Database
from storage.models import Trace, TraceSpan
from storage.prepared import Prepared

traces = Trace.__table__
spans = TraceSpan.__table__

# The exporter sends up to 128 items per batch, and its whole queue (8192) when flushed at exit.
MAX_ITEMS = 10_000


class TraceItem(TypedDict, total=False):
    object: Required[Literal["trace"]]
    id: Required[str]
    workflow_name: Optional[str]
    group_id: Optional[str]
    metadata: Optional[Dict[str, Any]]


class SpanItem(TypedDict, total=False):
    object: Required[Literal["trace.span"]]
    id: Required[str]
    trace_id: Required[str]
    parent_id: Optional[str]
    started_at: Optional[str]
    ended_at: Optional[str]
    span_data: Optional[Dict[str, Any]]
    error: Optional[Dict[str, Any]]


class IngestParams(TypedDict):
    data: Required[List[Union[TraceItem, SpanItem]]]


_GET_TRACE = Prepared(select(traces.c.data, traces.c.created_at).where(traces.c.tenant_id == bindparam("tenant_id"), traces.c.id == bindparam("id")))
_FIRST_SPAN = Prepared(select(spans.c.created_at).where(
    spans.c.tenant_id == bindparam("tenant_id"), spans.c.trace_id == bindparam("trace_id"),
).order_by(spans.c.seq.asc()).limit(1))


def _cutoff(table, keep: int):
    """The seq at and below which a tenant's oldest rows go, so that `keep` remain."""
    return (
        select(table.c.seq).where(table.c.tenant_id == bindparam("tenant_id"))
        .order_by(table.c.seq.desc()).offset(keep).limit(1).scalar_subquery()
    )


def _check_ids(items: list[dict]) -> None:
    for index, item in enumerate(items):
        for name in ("id", "trace_id"):
            value = item.get(name)
            if value is not None and not 1 <= len(value) <= 128:
                raise invalid_request(
                    f"Invalid 'data[{index}].{name}': string must be between 1 and 128 characters long.",
                    param=f"data[{index}].{name}", code="invalid_value",
                )


class TracesService:
    def __init__(self, db: Database, *, keep_traces: int = 1000, keep_spans: int = 100_000) -> None:
        self._db = db
        self._keep_traces = keep_traces
        self._keep_spans = keep_spans
        insert = sqlite_insert if db.is_sqlite else pg_insert
        self._insert_trace = insert(traces).on_conflict_do_nothing(index_elements=["tenant_id", "id"])
        self._insert_span = insert(spans).on_conflict_do_nothing(index_elements=["tenant_id", "id"])
        self._prune_traces = delete(traces).where(traces.c.tenant_id == bindparam("tenant_id"), traces.c.seq <= _cutoff(traces, keep_traces))
        self._prune_spans = delete(spans).where(spans.c.tenant_id == bindparam("tenant_id"), spans.c.seq <= _cutoff(spans, keep_spans))

    async def ingest(self, tenant_id: str, body: dict, size: int) -> None:
        items = body.get("data")
        if isinstance(items, list) and len(items) > MAX_ITEMS:
            raise invalid_request(
                f"Invalid 'data': array too long. Expected an array with maximum length {MAX_ITEMS}, but got an array with length {len(items)} instead.",
                param="data", code="array_above_max_length",
            )
        await validated(IngestParams, body, size)
        _check_ids(items)
        now = int(time.time())
        trace_rows = [{"id": item["id"], "tenant_id": tenant_id, "created_at": now, "data": item} for item in items if item["object"] == "trace"]
        span_rows = [
            {"id": item["id"], "tenant_id": tenant_id, "trace_id": item["trace_id"], "created_at": now, "data": item}
            for item in items if item["object"] == "trace.span"
        ]
        async with self._db.begin() as conn:
            if trace_rows:
                await conn.execute(self._insert_trace, trace_rows)
                await conn.execute(self._prune_traces, {"tenant_id": tenant_id})
            if span_rows:
                await conn.execute(self._insert_span, span_rows)
                await conn.execute(self._prune_spans, {"tenant_id": tenant_id})

    async def list(self, tenant_id: str, page: Page) -> dict:
        rows, has_more = await fetch_page(self._db, traces, page, {"tenant_id": tenant_id}, columns=(traces.c.data, traces.c.created_at))
        return list_body([_trace(row.data, row.created_at) for row in rows], has_more)

    async def get(self, tenant_id: str, trace_id: str) -> dict:
        row = await self._db.fetch_one(_GET_TRACE, {"tenant_id": tenant_id, "id": trace_id})
        if row is not None:
            return _trace(row.data, row.created_at)
        span = await self._db.fetch_one(_FIRST_SPAN, {"tenant_id": tenant_id, "trace_id": trace_id})
        if span is None:
            raise not_found("trace", trace_id)
        # Spans whose trace was never exported (e.g. tracing disabled for it): the trace is known by id only.
        return _trace({"object": "trace", "id": trace_id, "workflow_name": None, "group_id": None, "metadata": None}, span.created_at)

    async def spans(self, tenant_id: str, trace_id: str, page: Page) -> dict:
        rows, has_more = await fetch_page(
            self._db, spans, page, {"tenant_id": tenant_id, "trace_id": trace_id}, columns=(spans.c.data, spans.c.created_at),
        )
        return list_body([dict(row.data, created_at=row.created_at) for row in rows], has_more)


def _trace(data: dict, created_at: int) -> dict:
    return {"object": "trace", "workflow_name": None, "group_id": None, "metadata": None, **data, "created_at": created_at}
