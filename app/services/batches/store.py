"""Rows of batches and their results: the wire batch in `data`, with `status` kept in step, and one
`batch_results` row per answered line.

A batch is written by the API (cancel) and by its job, so every status change is a compare-and-set
(`save`, False when someone else moved it). A result row is unique per (batch, custom_id): a resumed
batch cannot answer a line twice.
"""
from __future__ import annotations

from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from app.core.pagination import Page, fetch_page
from app.services.batches.messages import ID_PREFIX as ANTHROPIC_PREFIX
from storage.db import Database
from storage.models import Batch, BatchResult
from storage.prepared import Prepared
from storage.status import guarded_params, guarded_update

batches = Batch.__table__
results = BatchResult.__table__
OPENAI_PREFIX = "batch_"

_INSERT = Prepared(insert(batches).values({c: bindparam(c) for c in ("id", "tenant_id", "created_at", "status", "data")}))
_SAVE_IF = guarded_update(batches, ("data",))
_GET = Prepared(select(batches.c.data, batches.c.tenant_id).where(batches.c.id == bindparam("id")))
_GET_OWN = Prepared(select(batches.c.data).where(batches.c.id == bindparam("id"), batches.c.tenant_id == bindparam("tenant_id")))
_ADD_RESULT = Prepared(
    insert(results).prefix_with("OR IGNORE", dialect="sqlite").values({c: bindparam(c) for c in ("batch_id", "custom_id", "line", "ok", "data")})
)
_DELETE = Prepared(batches.delete().where(batches.c.id == bindparam("id")))
_DELETE_RESULTS = Prepared(results.delete().where(results.c.batch_id == bindparam("id")))
_DONE = Prepared(select(results.c.custom_id, results.c.ok).where(results.c.batch_id == bindparam("batch_id")))
_ALL = Prepared(select(results.c.ok, results.c.data).where(results.c.batch_id == bindparam("batch_id")).order_by(results.c.line))
# OpenAI's batches and Anthropic's Message Batches share the table; each API lists only its own (by id
# prefix). Built once: list pages are compiled and cached per condition.
_ONLY = {prefix: batches.c.id.like(prefix + "%") for prefix in (OPENAI_PREFIX, ANTHROPIC_PREFIX)}


def _save(batch: dict, expect: str | tuple[str, ...]) -> tuple:
    return (_SAVE_IF, guarded_params(batch["id"], {"status": batch["status"], "data": batch}, expect))


class BatchStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, tenant_id: str, batch: dict) -> None:
        row = {"id": batch["id"], "tenant_id": tenant_id, "created_at": batch["created_at"], "status": batch["status"], "data": batch}
        await self._db.write([(_INSERT, row)])

    async def get(self, batch_id: str) -> tuple[dict, str] | None:
        """(batch, tenant_id), for the job (which knows only the id)."""
        row = await self._db.fetch_one(_GET, {"id": batch_id})
        return (row.data, row.tenant_id) if row is not None else None

    async def get_own(self, tenant_id: str, batch_id: str) -> dict | None:
        row = await self._db.fetch_one(_GET_OWN, {"id": batch_id, "tenant_id": tenant_id})
        return row.data if row is not None else None

    async def page(self, tenant_id: str, page: Page, id_prefix: str) -> tuple[list[dict], bool]:
        """A page of the tenant's batches of one API (`id_prefix`: OPENAI_PREFIX or ANTHROPIC_PREFIX)."""
        rows, has_more = await fetch_page(self._db, batches, page, {"tenant_id": tenant_id}, (_ONLY[id_prefix],), columns=(batches.c.data,))
        return [row.data for row in rows], has_more

    async def save(self, batch: dict, expect: str | tuple[str, ...]) -> bool:
        """Writes the batch if its stored status is (one of) `expect`; False, and nothing written, if not."""
        return await self._db.write([_save(batch, expect)], guard=True)

    async def save_with_results(self, batch: dict, expect: str, rows: list[dict]) -> bool:
        """`save`, with result rows in the same transaction; a row whose line is already answered is
        left as it is."""
        ops = [_save(batch, expect), *((_ADD_RESULT, row) for row in rows)]
        try:
            return await self._db.write(ops, guard=True)
        except IntegrityError:  # PostgreSQL: a line already written by an earlier attempt; one at a time
            for op in ops[1:]:
                try:
                    await self._db.write([op])
                except IntegrityError:
                    pass
            return await self._db.write(ops[:1], guard=True)

    async def add_results(self, rows: list[dict]) -> None:
        if rows:
            await self._db.write([(_ADD_RESULT, row) for row in rows])

    async def answered(self, batch_id: str) -> dict[str, bool]:
        """custom_id -> ok, for each line already answered."""
        return {row.custom_id: row.ok for row in await self._db.fetch_all(_DONE, {"batch_id": batch_id})}

    async def results(self, batch_id: str) -> list:
        """The result rows (ok, data), in the input's order."""
        return await self._db.fetch_all(_ALL, {"batch_id": batch_id})

    async def delete(self, batch_id: str) -> None:
        await self._db.write([(_DELETE_RESULTS, {"id": batch_id}), (_DELETE, {"id": batch_id})])
