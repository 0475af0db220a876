"""Rows of evals, eval runs and output items: the wire object in `data`, with the columns lists filter on.

A run is written by the API (cancel) and by its job, so every status change is a compare-and-set. An
output item is unique per (run, datasource_item_id): a resumed run never grades a row twice.
"""
from __future__ import annotations

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.core.pagination import Page, fetch_page
from storage.db import Database
from storage.models import Eval, EvalOutputItem, EvalRun
from storage.prepared import Prepared
from storage.status import guarded_params, guarded_update

evals, runs, items = Eval.__table__, EvalRun.__table__, EvalOutputItem.__table__


def _insert(table, columns):
    return Prepared(insert(table).values({c: bindparam(c) for c in columns}))


_INSERT_EVAL = _insert(evals, ("id", "tenant_id", "created_at", "data"))
_GET_EVAL = Prepared(select(evals.c.data).where(evals.c.id == bindparam("id"), evals.c.tenant_id == bindparam("tenant_id")))
_GET_EVAL_ANY = Prepared(select(evals.c.data).where(evals.c.id == bindparam("id")))
_UPDATE_EVAL = Prepared(update(evals).where(evals.c.id == bindparam("b_id")).values(data=bindparam("b_data")))
_DELETE_EVAL = Prepared(evals.delete().where(evals.c.id == bindparam("id")))
_DELETE_EVAL_RUNS = Prepared(runs.delete().where(runs.c.eval_id == bindparam("id")))
_DELETE_EVAL_ITEMS = Prepared(items.delete().where(items.c.run_id.in_(select(runs.c.id).where(runs.c.eval_id == bindparam("id")))))
_INSERT_RUN = _insert(runs, ("id", "tenant_id", "eval_id", "created_at", "status", "data"))
_GET_RUN = Prepared(select(runs.c.data, runs.c.tenant_id).where(runs.c.id == bindparam("id")))
_GET_RUN_OWN = Prepared(select(runs.c.data).where(runs.c.id == bindparam("id"), runs.c.tenant_id == bindparam("tenant_id"),
                                                  runs.c.eval_id == bindparam("eval_id")))
_SAVE_RUN = guarded_update(runs, ("data",))
_DELETE_RUN = Prepared(runs.delete().where(runs.c.id == bindparam("id")))
_DELETE_RUN_ITEMS = Prepared(items.delete().where(items.c.run_id == bindparam("id")))
_INSERT_ITEM = _insert(items, ("id", "tenant_id", "run_id", "datasource_item_id", "status", "data"))
_DONE_ITEMS = Prepared(select(items.c.datasource_item_id).where(items.c.run_id == bindparam("run_id")))
_ALL_ITEMS = Prepared(select(items.c.data).where(items.c.run_id == bindparam("run_id")).order_by(items.c.datasource_item_id))
_GET_ITEM = Prepared(select(items.c.data).where(items.c.id == bindparam("id"), items.c.run_id == bindparam("run_id"),
                                                items.c.tenant_id == bindparam("tenant_id")))


class EvalStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # evals
    async def insert_eval(self, tenant_id: str, eval_: dict) -> None:
        await self._db.write([(_INSERT_EVAL, {"id": eval_["id"], "tenant_id": tenant_id, "created_at": eval_["created_at"], "data": eval_})])

    async def get_eval(self, tenant_id: str, eval_id: str) -> dict | None:
        row = await self._db.fetch_one(_GET_EVAL, {"id": eval_id, "tenant_id": tenant_id})
        return row.data if row is not None else None

    async def eval_by_id(self, eval_id: str) -> dict | None:
        """For the job, which knows only ids (the run's tenant owns its eval)."""
        row = await self._db.fetch_one(_GET_EVAL_ANY, {"id": eval_id})
        return row.data if row is not None else None

    async def update_eval(self, eval_: dict) -> None:
        await self._db.write([(_UPDATE_EVAL, {"b_id": eval_["id"], "b_data": eval_})])

    async def delete_eval(self, eval_id: str) -> None:
        params = {"id": eval_id}
        await self._db.write([(_DELETE_EVAL_ITEMS, params), (_DELETE_EVAL_RUNS, params), (_DELETE_EVAL, params)])

    async def page_evals(self, tenant_id: str, page: Page) -> tuple[list[dict], bool]:
        rows, has_more = await fetch_page(self._db, evals, page, {"tenant_id": tenant_id}, columns=(evals.c.data,))
        return [row.data for row in rows], has_more

    # runs
    async def insert_run(self, tenant_id: str, run: dict) -> None:
        row = {"id": run["id"], "tenant_id": tenant_id, "eval_id": run["eval_id"], "created_at": run["created_at"], "status": run["status"], "data": run}
        await self._db.write([(_INSERT_RUN, row)])

    async def get_run(self, run_id: str) -> tuple[dict, str] | None:
        row = await self._db.fetch_one(_GET_RUN, {"id": run_id})
        return (row.data, row.tenant_id) if row is not None else None

    async def get_own_run(self, tenant_id: str, eval_id: str, run_id: str) -> dict | None:
        row = await self._db.fetch_one(_GET_RUN_OWN, {"id": run_id, "tenant_id": tenant_id, "eval_id": eval_id})
        return row.data if row is not None else None

    async def save_run(self, run: dict, expect: str | tuple[str, ...]) -> bool:
        """Writes the run if its stored status is (one of) `expect`; False, and nothing written, if not."""
        return await self._db.write([(_SAVE_RUN, guarded_params(run["id"], {"status": run["status"], "data": run}, expect))], guard=True)

    async def delete_run(self, run_id: str) -> None:
        await self._db.write([(_DELETE_RUN_ITEMS, {"id": run_id}), (_DELETE_RUN, {"id": run_id})])

    async def page_runs(self, tenant_id: str, eval_id: str, page: Page, status: str | None) -> tuple[list[dict], bool]:
        filters = {"tenant_id": tenant_id, "eval_id": eval_id, **({"status": status} if status else {})}
        rows, has_more = await fetch_page(self._db, runs, page, filters, columns=(runs.c.data,))
        return [row.data for row in rows], has_more

    # output items
    async def add_item(self, tenant_id: str, item: dict) -> bool:
        """False when the run already has an item for that data-source row (an earlier attempt wrote it)."""
        row = {"id": item["id"], "tenant_id": tenant_id, "run_id": item["run_id"], "datasource_item_id": item["datasource_item_id"],
               "status": item["status"], "data": item}
        try:
            await self._db.write([(_INSERT_ITEM, row)])
        except IntegrityError:
            return False
        return True

    async def done_items(self, run_id: str) -> set[int]:
        return {row.datasource_item_id for row in await self._db.fetch_all(_DONE_ITEMS, {"run_id": run_id})}

    async def all_items(self, run_id: str) -> list[dict]:
        return [row.data for row in await self._db.fetch_all(_ALL_ITEMS, {"run_id": run_id})]

    async def get_item(self, tenant_id: str, run_id: str, item_id: str) -> dict | None:
        row = await self._db.fetch_one(_GET_ITEM, {"id": item_id, "run_id": run_id, "tenant_id": tenant_id})
        return row.data if row is not None else None

    async def page_items(self, tenant_id: str, run_id: str, page: Page, status: str | None) -> tuple[list[dict], bool]:
        filters = {"tenant_id": tenant_id, "run_id": run_id, **({"status": status} if status else {})}
        rows, has_more = await fetch_page(self._db, items, page, filters, columns=(items.c.data,))
        return [row.data for row in rows], has_more
