"""OpenAI list pagination: `after` / `before` cursors, `limit`, `order`, over a table's `seq` column.

Ordering by the auto-increment `seq` rather than `created_at` keeps objects created in the same second
in creation order, so a cursor never skips or repeats one.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.errors import invalid_request


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


async def fetch_page(conn: AsyncConnection, table: Table, page: Page, *conditions) -> tuple[list, bool]:
    """One page of rows matching `conditions` (which must scope by tenant), and whether more follow."""
    seq = table.c.seq
    ascending = page.order == "asc"
    query = select(table).where(*conditions)
    if page.after:
        cursor = select(seq).where(table.c.id == page.after, *conditions).scalar_subquery()
        query = query.where(seq > cursor if ascending else seq < cursor)
    if page.before:
        cursor = select(seq).where(table.c.id == page.before, *conditions).scalar_subquery()
        query = query.where(seq < cursor if ascending else seq > cursor)
    # With only `before`, walk backwards from the cursor and flip the page into the requested order.
    backwards = page.before is not None and page.after is None
    walk_ascending = ascending != backwards
    query = query.order_by(seq.asc() if walk_ascending else seq.desc()).limit(page.limit + 1)
    rows = (await conn.execute(query)).all()
    has_more = len(rows) > page.limit
    rows = rows[: page.limit]
    if backwards:
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
