"""Rows of responses and their items: the wire Response in `data`, what executing needs in `request`,
input and output items in `response_items` (in order, by `seq`).

Status changes a background job makes are compare-and-set on the status column, so a cancel from the
API is never overwritten by the job finishing; output items are replaced (not appended) in the same
transaction as the final status, so a retried job never duplicates them.
"""
from __future__ import annotations

import time

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.core.pagination import Page, fetch_page
from storage.db import Database
from storage.models import Response, ResponseItem
from storage.prepared import Prepared
from storage.status import guarded_params, guarded_update

RELAYED = "relayed"  # the status of a row that only records which tenant created an upstream's response
responses = Response.__table__
items = ResponseItem.__table__

_INSERT = Prepared(insert(responses).values({c: bindparam(c) for c in (
    "id", "tenant_id", "created_at", "status", "previous_response_id", "conversation_id", "data", "request")}))
_INSERT_ITEM = Prepared(insert(items).values({c: bindparam(c) for c in ("id", "response_id", "tenant_id", "kind", "data")}))
_SET = update(responses).where(responses.c.id == bindparam("b_id")).values(status=bindparam("b_status"), data=bindparam("b_data"))
_SAVE = Prepared(_SET)
_SAVE_IF = guarded_update(responses, ("data",))
_SAVE_WITH_REQUEST_IF = guarded_update(responses, ("data", "request"))
_DROP_OUTPUT = Prepared(delete(items).where(items.c.response_id == bindparam("response_id"), items.c.kind == "output"))
_DROP_ITEMS = Prepared(delete(items).where(items.c.response_id == bindparam("response_id")))
_DROP = Prepared(delete(responses).where(responses.c.id == bindparam("response_id")))
_GET = Prepared(select(responses.c.data, responses.c.tenant_id, responses.c.request, responses.c.status).where(responses.c.id == bindparam("id")))
_ITEMS = Prepared(select(items.c.kind, items.c.data).where(items.c.response_id == bindparam("response_id")).order_by(items.c.seq))


class ResponseStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, response_id: str, tenant_id: str | None = None):
        """The row (data, tenant_id, request, status), or None (also for another tenant's, and for the
        record of a response an upstream holds)."""
        row = await self.db.fetch_one(_GET, {"id": response_id})
        if row is None or row.status == RELAYED or (tenant_id is not None and row.tenant_id != tenant_id):
            return None
        return row

    async def relayed_by(self, response_id: str, tenant_id: str) -> bool:
        """Whether `tenant_id` created `response_id` through the relay (its id is the upstream's)."""
        row = await self.db.fetch_one(_GET, {"id": response_id})
        return row is not None and row.status == RELAYED and row.tenant_id == tenant_id

    async def record_relayed(self, response_id: str, tenant_id: str) -> None:
        """Binds an upstream's response id to the tenant that created it: only that tenant's requests
        about it are relayed (the upstream sees one key, ours, for every tenant)."""
        try:
            await self.db.write([(_INSERT, {"id": response_id, "tenant_id": tenant_id, "created_at": int(time.time()), "status": RELAYED,
                                            "previous_response_id": None, "conversation_id": None,
                                            "data": {"id": response_id, "object": "response"}, "request": None})])
        except IntegrityError:
            pass  # recorded already

    async def insert(self, response: dict, tenant_id: str, request: dict, input_items: list[dict], output_items: list[dict] = ()) -> None:
        ops = [(_INSERT, {
            "id": response["id"], "tenant_id": tenant_id, "created_at": response["created_at"], "status": response["status"],
            "previous_response_id": response.get("previous_response_id"),
            "conversation_id": (response.get("conversation") or {}).get("id"), "data": response, "request": request,
        })]
        ops += self._item_ops(response["id"], tenant_id, "input", input_items)
        ops += self._item_ops(response["id"], tenant_id, "output", output_items)
        await self.db.write(ops)

    @staticmethod
    def _item_ops(response_id: str, tenant_id: str, kind: str, found: list[dict]) -> list:
        return [(_INSERT_ITEM, {"id": item["id"], "response_id": response_id, "tenant_id": tenant_id, "kind": kind, "data": item}) for item in found]

    async def save(self, response: dict, *, expect: str | None = None, request: dict | None = None) -> bool:
        params = {"b_id": response["id"], "b_status": response["status"], "b_data": response}
        if expect is None:
            return await self.db.write([(_SAVE, params)])
        values = {"status": response["status"], "data": response}
        if request is not None:
            return await self.db.write([(_SAVE_WITH_REQUEST_IF, guarded_params(response["id"], {**values, "request": request}, expect))], guard=True)
        return await self.db.write([(_SAVE_IF, guarded_params(response["id"], values, expect))], guard=True)

    async def finish(self, response: dict, tenant_id: str, request: dict, output_items: list[dict], *, expect: str) -> bool:
        """The final status and output, replacing whatever an interrupted attempt wrote; False (nothing
        written) if the response is no longer in `expect` (cancelled meanwhile)."""
        values = {"status": response["status"], "data": response, "request": request}
        ops = [(_SAVE_WITH_REQUEST_IF, guarded_params(response["id"], values, expect)), (_DROP_OUTPUT, {"response_id": response["id"]})]
        ops += self._item_ops(response["id"], tenant_id, "output", output_items)
        return await self.db.write(ops, guard=True)

    async def items(self, response_id: str) -> list[tuple[str, dict]]:
        """(kind, item) of a response, in order: its input items, then its output items."""
        rows = await self.db.fetch_all(_ITEMS, {"response_id": response_id})
        return [(row.kind, row.data) for row in rows if row.kind == "input"] + [(row.kind, row.data) for row in rows if row.kind == "output"]

    async def input_page(self, tenant_id: str, response_id: str, page: Page) -> tuple[list[dict], bool]:
        rows, has_more = await fetch_page(self.db, items, page, {"tenant_id": tenant_id, "response_id": response_id, "kind": "input"},
                                          columns=(items.c.id, items.c.data))
        return [row.data for row in rows], has_more

    async def delete(self, response_id: str) -> None:
        await self.db.write([(_DROP_ITEMS, {"response_id": response_id}), (_DROP, {"response_id": response_id})])
