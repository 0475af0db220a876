"""OpenAI list pagination: `after` / `before` cursors, `limit`, `order`, over a table's `seq` column.

Ordering by the auto-increment `seq` rather than `created_at` keeps objects created in the same second
in creation order, so a cursor never skips or repeats one. Listing is a hot path: each shape of list
query is built once with bind parameters and reused (SQLAlchemy then reuses its compiled form too).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Table, bindparam, select
from sqlalchemy.sql import ColumnElement

from app.core.errors import invalid_request
from storage.db import Database
from storage.prepared import Prepared


@dataclass(frozen=True)
class Page:
    limit: int
    order: str
    after: str | None
    before: str | None


def page_params(
    limit: int | None,
    order: str | None,
    after: str | None,
    before: str | None = None,
    *,
    default_limit: int = 20,
    max_limit: int = 100,
) -> Page:
    if limit is None:
        limit = default_limit
    if not 1 <= limit <= max_limit:
        raise invalid_request(
            f"Invalid 'limit': integer must be between 1 and {max_limit}, got {limit}.",
            param="limit",
            code="integer_out_of_range" if limit > max_limit else "integer_below_min_value",
        )
    order = order or "desc"
    if order not in ("asc", "desc"):
        raise invalid_request(
            f"Invalid value: '{order}'. Supported values are: 'asc' and 'desc'.", param="order", code="invalid_value"
        )
    return Page(limit=limit, order=order, after=after or None, before=before or None)


def query_int(query, name: str) -> int | None:
    """An integer query parameter read by hand (`?limit=20`), with the 400 Litestar would give."""
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise invalid_request(f"Invalid type for '{name}': expected an integer.", param=name, code="invalid_type") from None  # as app/api/errors.py words Litestar's


@lru_cache(maxsize=512)
def _page_query(
    table: Table, columns: tuple | None, filters: tuple[str, ...], extra: tuple[ColumnElement, ...], ascending: bool, after: bool, before: bool
):
    seq = table.c.seq
    scope = [table.c[name] == bindparam(f"f_{name}") for name in filters] + list(extra)
    query = (select(*columns) if columns else select(table)).where(*scope)
    if after:
        cursor = select(seq).where(table.c.id == bindparam("after"), *scope).scalar_subquery()
        query = query.where(seq > cursor if ascending else seq < cursor)
    if before:
        cursor = select(seq).where(table.c.id == bindparam("before"), *scope).scalar_subquery()
        query = query.where(seq < cursor if ascending else seq > cursor)
    # With only `before`, walk backwards from the cursor (the page is flipped back afterwards).
    walk_ascending = ascending != (before and not after)
    return Prepared(query.order_by(seq.asc() if walk_ascending else seq.desc()).limit(bindparam("limit")))


async def fetch_page(
    db: Database,
    table: Table,
    page: Page,
    filters: dict[str, Any],
    extra: tuple[ColumnElement, ...] = (),
    params: dict[str, Any] | None = None,
    columns: tuple | None = None,
    plain: bool = False,
) -> tuple[list, bool]:
    """One page of rows whose columns equal `filters` (which must include the tenant) and that match the
    `extra` conditions (module-level constants whose bind parameters come in `params`). `columns`
    narrows what is read (every row costs a Python object per column); `plain` rows may be bare tuples
    of those columns, in order."""
    query = _page_query(table, columns, tuple(filters), extra, page.order == "asc", page.after is not None, page.before is not None)
    values = {f"f_{name}": value for name, value in filters.items()}
    values.update(params or {}, limit=page.limit + 1, after=page.after, before=page.before)
    rows = await db.fetch_bounded(query, values, plain=plain)
    has_more = len(rows) > page.limit
    rows = rows[: page.limit]
    if page.before is not None and page.after is None:
        rows.reverse()
    return rows, has_more


def list_body(data: list[dict], has_more: bool) -> dict:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
