"""The Agents SDK's trace exporter posts to `/v1/traces/ingest`; what it sent is read back under
Understudy's reserved prefix (`/_understudy/v1`, a path OpenAI does not use), with the same keys."""
from __future__ import annotations

from litestar import Request, get, post

from app.api.deps import caller
from app.core.pagination import page_params
from app.core.validation import decode_json_object


@post("/traces/ingest", status_code=204)
async def ingest_traces(request: Request) -> None:
    platform, tenant = caller(request)
    raw = await request.body()
    await platform.traces.ingest(tenant, decode_json_object(raw), len(raw))


@get("/traces")
async def list_traces(request: Request, limit: int | None = None, order: str | None = None, after: str | None = None,
                      before: str | None = None) -> dict:
    platform, tenant = caller(request)
    return await platform.traces.list(tenant, page_params(limit, order, after, before))


@get("/traces/{trace_id:str}")
async def retrieve_trace(request: Request, trace_id: str) -> dict:
    platform, tenant = caller(request)
    return await platform.traces.get(tenant, trace_id)


@get("/traces/{trace_id:str}/spans")
async def list_spans(request: Request, trace_id: str, limit: int | None = None, order: str | None = None, after: str | None = None,
                     before: str | None = None) -> dict:
    """Spans in the order they finished (`asc` unless asked otherwise), up to 1000 a page."""
    platform, tenant = caller(request)
    return await platform.traces.spans(tenant, trace_id, page_params(limit, order or "asc", after, before, default_limit=100, max_limit=1000))


TRACE_INGEST_HANDLERS: list = [ingest_traces]
TRACE_READ_HANDLERS: list = [list_traces, retrieve_trace, list_spans]
