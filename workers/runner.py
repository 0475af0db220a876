"""The in-process job runner (the embedded default).

Jobs are rows in the `jobs` table before they run, so nothing is lost when the process stops: at start
the runner takes every queued job, and every job a previous process left `running`, and runs it again
(job functions are idempotent). Concurrency is bounded by a semaphore; a job that raises is retried
with backoff a few times, then marked failed.
"""
from __future__ import annotations

import asyncio
import logging
import time
import traceback
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.core.ids import new_id
from storage.db import Database
from storage.models import Job
from storage.prepared import Prepared
from app.core.queue import JobFunction, run_as_caller, with_caller

log = logging.getLogger("understudy.jobs")
jobs = Job.__table__
_ACTIVE = ("queued", "running")
# The writes every job makes (enqueue, claim, finish), compiled once and run as single `Database.write`
# batches: on SQLite one thread hand-off each instead of three (a run step pays for them).
_ADD = Prepared(insert(jobs).values({c: bindparam(c) for c in ("id", "name", "args", "key", "status", "attempts", "created_at", "updated_at")}))
_CLAIM = Prepared(
    update(jobs).where(jobs.c.id == bindparam("b_id"), jobs.c.status == "queued")
    .values(status="running", attempts=jobs.c.attempts + 1, updated_at=bindparam("b_now"))
)
_CLAIMED = Prepared(select(jobs.c.name, jobs.c.args, jobs.c.attempts).where(jobs.c.id == bindparam("id")))
_SET = Prepared(update(jobs).where(jobs.c.id == bindparam("b_id")).values(
    status=bindparam("b_status"), last_error=bindparam("b_last_error"), updated_at=bindparam("b_now")))


class InProcessRunner:
    name = "in-process"

    def __init__(
        self,
        db: Database,
        registry: dict[str, JobFunction],
        ctx: dict[str, Any],
        *,
        concurrency: int = 4,
        max_attempts: int = 3,
        retry_delay: float = 0.5,
    ) -> None:
        self._db = db
        self._registry = registry
        self.ctx = ctx
        self._slots = asyncio.Semaphore(concurrency)
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay
        self._tasks: set[asyncio.Task] = set()
        self._stopping = False

    async def start(self) -> None:
        async with self._db.begin() as conn:
            # Only this process runs jobs in the embedded setup: "running" rows are a previous crash's.
            await conn.execute(update(jobs).where(jobs.c.status == "running").values(status="queued"))
            pending = (await conn.execute(select(jobs.c.id).where(jobs.c.status == "queued").order_by(jobs.c.seq))).scalars().all()
        for job_id in pending:
            self._launch(job_id)
        if pending:
            log.info("resuming %d unfinished job(s)", len(pending))

    async def enqueue(self, job: str, *, key: str | None = None, **args: Any) -> str:
        if job not in self._registry:
            raise KeyError(f"unknown job {job!r}")
        now = int(time.time())
        job_id = new_id("job_")
        args = with_caller(args)
        try:
            await self._db.write([(_ADD, {
                "id": job_id, "name": job, "args": args, "key": key, "status": "queued", "attempts": 0, "created_at": now, "updated_at": now,
            })])
        except IntegrityError:
            if key is None:
                raise
            job_id = await self._requeue_keyed(job, key, args, now)
            if job_id is None:  # the same work is already queued or running
                async with self._db.connect() as conn:
                    return (await conn.execute(select(jobs.c.id).where(jobs.c.key == key))).scalar_one()
        self._launch(job_id)
        return job_id

    async def _requeue_keyed(self, job: str, key: str, args: dict, now: int) -> str | None:
        """A finished job with this key is reused as the new job's row."""
        async with self._db.begin() as conn:
            row = (await conn.execute(select(jobs.c.id, jobs.c.status).where(jobs.c.key == key))).first()
            if row is None or row.status in _ACTIVE:
                return None
            await conn.execute(
                update(jobs)
                .where(jobs.c.id == row.id, jobs.c.status.not_in(_ACTIVE))
                .values(name=job, args=args, status="queued", attempts=0, last_error=None, updated_at=now)
            )
            return row.id

    def _launch(self, job_id: str, delay: float = 0.0) -> None:
        if self._stopping:
            return
        task = asyncio.create_task(self._run(job_id, delay), name=f"job:{job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, job_id: str, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        async with self._slots:
            if not await self._db.write([(_CLAIM, {"b_id": job_id, "b_now": int(time.time())})], guard=True):
                return  # another attempt or process has it
            row = await self._db.fetch_one(_CLAIMED, {"id": job_id})
            try:
                # arq's names: which attempt this is, and how many there are (a job can fail cleanly on its last).
                ctx = {**self.ctx, "job_try": row.attempts, "max_tries": self._max_attempts}
                await run_as_caller(self._registry[row.name], ctx, row.args)
            except asyncio.CancelledError:
                raise  # stopping: the row stays "running" and the next start resumes it
            except Exception as error:
                await self._failed(job_id, row.name, row.attempts, error)
            else:
                await self._set(job_id, status="succeeded", last_error=None)

    async def _failed(self, job_id: str, name: str, attempts: int, error: Exception) -> None:
        detail = "".join(traceback.format_exception_only(error)).strip()
        if attempts < self._max_attempts:
            log.warning("job %s (%s) failed on attempt %d, retrying: %s", job_id, name, attempts, detail)
            await self._set(job_id, status="queued", last_error=detail)
            self._launch(job_id, delay=self._retry_delay * 2 ** (attempts - 1))
        else:
            log.error("job %s (%s) failed for good after %d attempts: %s", job_id, name, attempts, detail)
            await self._set(job_id, status="failed", last_error=detail)

    async def _set(self, job_id: str, *, status: str, last_error: str | None) -> None:
        await self._db.write([(_SET, {"b_id": job_id, "b_status": status, "b_last_error": last_error, "b_now": int(time.time())})])

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Until no job is pending in this process (tests, and graceful shutdown)."""
        deadline = time.monotonic() + timeout
        while self._tasks:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("jobs still running")
            await asyncio.wait(set(self._tasks), timeout=remaining)

    async def stop(self) -> None:
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
