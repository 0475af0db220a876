"""Reads and writes of runs, run steps and run-made messages: whole wire objects in `data`, with the
columns queries filter on (status, expires_at, run_id) kept in step.

A run is written by two parties — the API (cancel, submit, metadata) and the job executing it — so
status changes are compare-and-set on the status column: a write that expected `in_progress` does not
land on a run the API has just moved to `cancelling`; the writer re-reads and reacts instead.
"""
from __future__ import annotations

from contextlib import asynccontextmanager

from sqlalchemy import bindparam, delete, insert, or_, select, update

from storage.db import Database
from storage.models import Run, RunStep, ThreadMessage
from storage.prepared import Prepared

runs = Run.__table__
steps = RunStep.__table__
messages = ThreadMessage.__table__

# Built once: a write builds no statement and SQLAlchemy reuses its compiled form (these are the
# writes of every run step).
_INSERT_RUN = insert(runs)
_INSERT_STEP = insert(steps)
_INSERT_MESSAGE = insert(messages)
_SAVE_RUN = update(runs).where(runs.c.id == bindparam("b_id")).values(
    status=bindparam("b_status"), expires_at=bindparam("b_expires_at"), data=bindparam("b_data"))
_SAVE_RUN_IF = _SAVE_RUN.where(or_(runs.c.status == bindparam("b_expect1"), runs.c.status == bindparam("b_expect2")))
_SAVE_STEP = update(steps).where(steps.c.id == bindparam("b_id")).values(status=bindparam("b_status"), data=bindparam("b_data"))
_SAVE_MESSAGE = update(messages).where(messages.c.id == bindparam("b_id")).values(data=bindparam("b_data"))
_GET_RUN = Prepared(select(runs.c.data, runs.c.tenant_id).where(runs.c.id == bindparam("id")))
_GET_STEPS = Prepared(select(steps.c.data).where(steps.c.run_id == bindparam("run_id")).order_by(steps.c.seq))
_GET_MESSAGE = Prepared(select(messages.c.data).where(messages.c.id == bindparam("id")))
_THREAD_MESSAGES = Prepared(select(messages.c.data).where(messages.c.thread_id == bindparam("thread_id")).order_by(messages.c.seq))


class RunStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def run(self, run_id: str) -> dict | None:
        row = await self.db.fetch_one(_GET_RUN, {"id": run_id})
        return row.data if row is not None else None

    async def run_and_tenant(self, run_id: str) -> tuple[dict, str] | None:
        row = await self.db.fetch_one(_GET_RUN, {"id": run_id})
        return (row.data, row.tenant_id) if row is not None else None

    @asynccontextmanager
    async def writing(self, conn=None):
        """A transaction, or the caller's (so several writes commit together)."""
        if conn is not None:
            yield conn
            return
        async with self.db.begin() as conn:
            yield conn

    async def insert_run(self, run: dict, tenant_id: str) -> None:
        """Raises IntegrityError when the thread already has an active run (partial unique index)."""
        async with self.db.begin() as conn:
            await conn.execute(_INSERT_RUN, {
                "id": run["id"], "thread_id": run["thread_id"], "tenant_id": tenant_id, "assistant_id": run["assistant_id"],
                "status": run["status"], "created_at": run["created_at"], "expires_at": run["expires_at"], "data": run,
            })

    async def save_run(self, run: dict, *, expect: str | tuple[str, ...] | None = None, conn=None) -> bool:
        """Writes the run; with `expect`, only if its stored status is (one of, at most two) that. False if it was not."""
        params = {"b_id": run["id"], "b_status": run["status"], "b_expires_at": run["expires_at"], "b_data": run}
        query = _SAVE_RUN
        if expect is not None:
            expected = (expect,) if isinstance(expect, str) else expect
            params.update(b_expect1=expected[0], b_expect2=expected[-1])
            query = _SAVE_RUN_IF
        async with self.writing(conn) as conn:
            return (await conn.execute(query, params)).rowcount == 1

    async def steps(self, run_id: str) -> list[dict]:
        return [row.data for row in await self.db.fetch_all(_GET_STEPS, {"run_id": run_id})]

    async def insert_step(self, step: dict, tenant_id: str, conn=None) -> None:
        async with self.writing(conn) as conn:
            await conn.execute(_INSERT_STEP, {
                "id": step["id"], "run_id": step["run_id"], "thread_id": step["thread_id"], "tenant_id": tenant_id,
                "status": step["status"], "created_at": step["created_at"], "data": step,
            })

    async def save_step(self, step: dict, conn=None) -> None:
        async with self.writing(conn) as conn:
            await conn.execute(_SAVE_STEP, {"b_id": step["id"], "b_status": step["status"], "b_data": step})

    async def message(self, message_id: str) -> dict | None:
        row = await self.db.fetch_one(_GET_MESSAGE, {"id": message_id})
        return row.data if row is not None else None

    async def thread_messages(self, thread_id: str) -> list[dict]:
        """Every message of the thread, oldest first (the prompt)."""
        return [row.data for row in await self.db.fetch_all(_THREAD_MESSAGES, {"thread_id": thread_id})]

    async def insert_message(self, message: dict, tenant_id: str, conn=None) -> None:
        async with self.writing(conn) as conn:
            await conn.execute(_INSERT_MESSAGE, {
                "id": message["id"], "thread_id": message["thread_id"], "tenant_id": tenant_id, "run_id": message["run_id"],
                "created_at": message["created_at"], "data": message,
            })

    async def save_message(self, message: dict, conn=None) -> None:
        async with self.writing(conn) as conn:
            await conn.execute(_SAVE_MESSAGE, {"b_id": message["id"], "b_data": message})

    async def discard_unfinished(self, run_id: str) -> None:
        """What an interrupted attempt left half-done — in-progress steps and the messages they were
        writing — is removed, so the retry writes them once (the model is asked again)."""
        unfinished = [s for s in await self.steps(run_id) if s["status"] == "in_progress"]
        if not unfinished:
            return
        message_ids = [s["step_details"]["message_creation"]["message_id"] for s in unfinished if s["type"] == "message_creation"]
        async with self.db.begin() as conn:
            await conn.execute(delete(steps).where(steps.c.id.in_([s["id"] for s in unfinished])))
            if message_ids:
                await conn.execute(delete(messages).where(messages.c.id.in_(message_ids)))
