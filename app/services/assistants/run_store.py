"""Reads and writes of runs, run steps and run-made messages: whole wire objects in `data`, with the
columns queries filter on (status, expires_at, run_id) kept in step.

A run is written by two parties — the API (cancel, submit, metadata) and the job executing it — so
status changes are compare-and-set on the status column: a write that expected `in_progress` does not
land on a run the API has just moved to `cancelling`; the writer re-reads and reacts instead.
"""
from __future__ import annotations

from sqlalchemy import bindparam, delete, insert, select, update

from storage.db import Database
from storage.models import Run, RunStep, ThreadMessage
from storage.prepared import Prepared
from storage.status import guarded_params, guarded_update

runs = Run.__table__
steps = RunStep.__table__
messages = ThreadMessage.__table__

# Built and compiled once: these are the writes of every run step.
_INSERT_RUN = Prepared(insert(runs).values({c: bindparam(c) for c in ("id", "thread_id", "tenant_id", "assistant_id", "status", "created_at", "expires_at", "data")}))
_INSERT_STEP = Prepared(insert(steps).values({c: bindparam(c) for c in ("id", "run_id", "thread_id", "tenant_id", "status", "created_at", "data")}))
_INSERT_MESSAGE = Prepared(insert(messages).values({c: bindparam(c) for c in ("id", "thread_id", "tenant_id", "run_id", "created_at", "data")}))
_RUN_SET = update(runs).where(runs.c.id == bindparam("b_id")).values(status=bindparam("b_status"), expires_at=bindparam("b_expires_at"), data=bindparam("b_data"))
_SAVE_RUN = Prepared(_RUN_SET)
_SAVE_RUN_IF = guarded_update(runs, ("expires_at", "data"))
_SAVE_STEP = Prepared(update(steps).where(steps.c.id == bindparam("b_id")).values(status=bindparam("b_status"), data=bindparam("b_data")))
_SAVE_MESSAGE = Prepared(update(messages).where(messages.c.id == bindparam("b_id")).values(data=bindparam("b_data")))
_GET_RUN = Prepared(select(runs.c.data, runs.c.tenant_id).where(runs.c.id == bindparam("id")))
_GET_STEPS = Prepared(select(steps.c.data).where(steps.c.run_id == bindparam("run_id")).order_by(steps.c.seq))
_GET_MESSAGE = Prepared(select(messages.c.data).where(messages.c.id == bindparam("id")))
_THREAD_MESSAGES = Prepared(select(messages.c.data).where(messages.c.thread_id == bindparam("thread_id")).order_by(messages.c.seq))


class Batch:
    """Writes that commit together, in one transaction (`Database.write`). A run's compare-and-set, when
    there is one, goes first: if the run is not in the expected status, nothing is written."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.ops: list[tuple[Prepared, dict]] = []
        self.guarded = False

    def save_run(self, run: dict, *, expect: str | tuple[str, ...] | None = None) -> "Batch":
        if expect is None:
            self.ops.append((_SAVE_RUN, {"b_id": run["id"], "b_status": run["status"], "b_expires_at": run["expires_at"], "b_data": run}))
            return self
        if self.ops:
            raise ValueError("a guarded run write must come first in its batch")
        values = {"status": run["status"], "expires_at": run["expires_at"], "data": run}
        self.ops.append((_SAVE_RUN_IF, guarded_params(run["id"], values, expect)))
        self.guarded = True
        return self

    def insert_run(self, run: dict, tenant_id: str) -> "Batch":
        self.ops.append((_INSERT_RUN, {
            "id": run["id"], "thread_id": run["thread_id"], "tenant_id": tenant_id, "assistant_id": run["assistant_id"],
            "status": run["status"], "created_at": run["created_at"], "expires_at": run["expires_at"], "data": run,
        }))
        return self

    def insert_step(self, step: dict, tenant_id: str) -> "Batch":
        self.ops.append((_INSERT_STEP, {
            "id": step["id"], "run_id": step["run_id"], "thread_id": step["thread_id"], "tenant_id": tenant_id,
            "status": step["status"], "created_at": step["created_at"], "data": step,
        }))
        return self

    def save_step(self, step: dict) -> "Batch":
        self.ops.append((_SAVE_STEP, {"b_id": step["id"], "b_status": step["status"], "b_data": step}))
        return self

    def insert_message(self, message: dict, tenant_id: str) -> "Batch":
        self.ops.append((_INSERT_MESSAGE, {
            "id": message["id"], "thread_id": message["thread_id"], "tenant_id": tenant_id, "run_id": message["run_id"],
            "created_at": message["created_at"], "data": message,
        }))
        return self

    def save_message(self, message: dict) -> "Batch":
        self.ops.append((_SAVE_MESSAGE, {"b_id": message["id"], "b_data": message}))
        return self

    async def commit(self) -> bool:
        """False when the guarded run write found the run in another status (and nothing was written)."""
        if not self.ops:
            return True
        return await self._db.write(self.ops, guard=self.guarded)


class RunStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def batch(self) -> Batch:
        return Batch(self.db)

    async def run(self, run_id: str) -> dict | None:
        row = await self.db.fetch_one(_GET_RUN, {"id": run_id})
        return row.data if row is not None else None

    async def run_and_tenant(self, run_id: str) -> tuple[dict, str] | None:
        row = await self.db.fetch_one(_GET_RUN, {"id": run_id})
        return (row.data, row.tenant_id) if row is not None else None

    async def insert_run(self, run: dict, tenant_id: str) -> None:
        """Raises IntegrityError when the thread already has an active run (partial unique index)."""
        await self.batch().insert_run(run, tenant_id).commit()

    async def save_run(self, run: dict, *, expect: str | tuple[str, ...] | None = None) -> bool:
        """Writes the run; with `expect`, only if its stored status is (one of, at most four) that. False if it was not."""
        return await self.batch().save_run(run, expect=expect).commit()

    async def steps(self, run_id: str) -> list[dict]:
        return [row.data for row in await self.db.fetch_all(_GET_STEPS, {"run_id": run_id})]

    async def message(self, message_id: str) -> dict | None:
        row = await self.db.fetch_one(_GET_MESSAGE, {"id": message_id})
        return row.data if row is not None else None

    async def thread_messages(self, thread_id: str) -> list[dict]:
        """Every message of the thread, oldest first (the prompt)."""
        return [row.data for row in await self.db.fetch_all(_THREAD_MESSAGES, {"thread_id": thread_id})]

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
