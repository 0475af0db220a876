"""The in-process job runner against a real SQLite database: running, retries, bounded concurrency,
keyed de-duplication and resuming the jobs a previous process left behind."""
from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import insert, select

from storage.db import Database
from storage.models import Job
from workers.runner import InProcessRunner

pytestmark = pytest.mark.anyio
jobs = Job.__table__
LIVENESS = 10.0  # generous: every wait here is milliseconds when things work


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
async def db(tmp_path):
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}")
    await database.migrate()
    yield database
    await database.dispose()


async def row(db: Database, job_id: str):
    async with db.connect() as conn:
        return (await conn.execute(select(jobs).where(jobs.c.id == job_id))).one()


async def all_rows(db: Database) -> list:
    async with db.connect() as conn:
        return (await conn.execute(select(jobs).order_by(jobs.c.seq))).all()


def make_runner(db, registry, ctx=None, **kwargs) -> InProcessRunner:
    kwargs.setdefault("retry_delay", 0.01)
    return InProcessRunner(db, registry, ctx if ctx is not None else {}, **kwargs)


async def test_a_job_runs_with_its_args_and_ctx_and_ends_succeeded(db):
    calls = []

    async def record(ctx, **args):
        calls.append((ctx, args))

    ctx = {"platform": object()}
    runner = make_runner(db, {"record": record}, ctx)
    await runner.start()
    job_id = await runner.enqueue("record", file_id="file_abc", count=3)
    assert job_id.startswith("job_")
    await runner.wait_idle(LIVENESS)

    assert len(calls) == 1
    assert calls[0][0] == {**ctx, "job_try": 1, "max_tries": 3}  # the shared context, and which attempt this is
    assert calls[0][1] == {"file_id": "file_abc", "count": 3}
    job = await row(db, job_id)
    assert (job.name, job.status, job.attempts, job.last_error) == ("record", "succeeded", 1, None)
    assert job.args == {"file_id": "file_abc", "count": 3}
    await runner.stop()


async def test_a_failing_job_is_retried_then_marked_failed(db):
    attempts = []

    async def broken(ctx, n):
        attempts.append(n)
        raise RuntimeError(f"boom {len(attempts)}")

    runner = make_runner(db, {"broken": broken}, max_attempts=3)
    job_id = await runner.enqueue("broken", n=7)
    await runner.wait_idle(LIVENESS)

    assert attempts == [7, 7, 7]
    job = await row(db, job_id)
    assert job.status == "failed"
    assert job.attempts == 3
    assert job.last_error == "RuntimeError: boom 3"
    await runner.stop()


async def test_a_job_failing_once_then_succeeding_ends_succeeded(db):
    seen = []

    async def flaky(ctx):
        seen.append(1)
        if len(seen) == 1:
            raise ConnectionError("transient")

    runner = make_runner(db, {"flaky": flaky}, max_attempts=3)
    job_id = await runner.enqueue("flaky")
    await runner.wait_idle(LIVENESS)

    assert len(seen) == 2
    job = await row(db, job_id)
    assert (job.status, job.attempts, job.last_error) == ("succeeded", 2, None)
    await runner.stop()


async def test_concurrency_is_bounded(db):
    running = 0
    peak = 0
    done = []

    async def nap(ctx, i):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        done.append(i)

    runner = make_runner(db, {"nap": nap}, concurrency=2)
    ids = [await runner.enqueue("nap", i=i) for i in range(6)]
    await runner.wait_idle(LIVENESS)

    assert sorted(done) == list(range(6))
    assert peak == 2  # the slots were used, and never exceeded
    assert {(await row(db, job_id)).status for job_id in ids} == {"succeeded"}
    await runner.stop()


async def test_the_same_key_while_queued_or_running_is_one_job(db):
    started = asyncio.Event()
    release = asyncio.Event()
    runs = []

    async def blocker(ctx):
        started.set()
        await release.wait()

    async def ingest(ctx, file_id):
        runs.append(file_id)

    # One slot, taken by the blocker: the keyed job stays "queued" until it is released.
    runner = make_runner(db, {"blocker": blocker, "ingest": ingest}, concurrency=1)
    await runner.enqueue("blocker", key="blocker")
    await asyncio.wait_for(started.wait(), LIVENESS)
    first = await runner.enqueue("ingest", key="ingest:file_1", file_id="file_1")
    assert (await row(db, first)).status == "queued"
    assert await runner.enqueue("ingest", key="ingest:file_1", file_id="file_1") == first

    # The blocker, keyed too, is "running": enqueueing it again is the same job.
    blocker_id = (await all_rows(db))[0].id
    assert (await row(db, blocker_id)).status == "running"
    assert await runner.enqueue("blocker", key="blocker") == blocker_id

    release.set()
    await runner.wait_idle(LIVENESS)
    assert runs == ["file_1"]
    assert len(await all_rows(db)) == 2

    # Finished: the same key runs again (reusing the key's row).
    again = await runner.enqueue("ingest", key="ingest:file_1", file_id="file_1")
    await runner.wait_idle(LIVENESS)
    assert runs == ["file_1", "file_1"]
    assert (await row(db, again)).status == "succeeded"
    # Jobs without a key are never merged.
    a, b = await runner.enqueue("ingest", file_id="x"), await runner.enqueue("ingest", file_id="x")
    assert a != b
    await runner.wait_idle(LIVENESS)
    assert runs.count("x") == 2
    await runner.stop()


async def test_a_new_runner_resumes_the_jobs_a_stopped_one_left(db, tmp_path):
    started = asyncio.Event()
    first_runs, second_runs = [], []

    async def slow(ctx, n):
        first_runs.append(n)
        started.set()
        await asyncio.Event().wait()  # never finishes in the first runner

    first = make_runner(db, {"slow": slow}, concurrency=1)
    await first.start()
    running_id = await first.enqueue("slow", n=1)
    queued_id = await first.enqueue("slow", n=2)
    await asyncio.wait_for(started.wait(), LIVENESS)
    await first.stop()
    assert (await row(db, running_id)).status == "running"
    assert (await row(db, queued_id)).status == "queued"
    assert first_runs == [1]

    # A new process: its own Database object on the same file, a registry whose job completes.
    async def quick(ctx, n):
        second_runs.append(n)

    db2 = Database(db.url)
    try:
        await db2.migrate()
        second = make_runner(db2, {"slow": quick})
        await second.start()
        await second.wait_idle(LIVENESS)
        await second.stop()
    finally:
        await db2.dispose()

    assert sorted(second_runs) == [1, 2]
    interrupted, waiting = await row(db, running_id), await row(db, queued_id)
    assert (interrupted.status, interrupted.attempts) == ("succeeded", 2)
    assert (waiting.status, waiting.attempts) == ("succeeded", 1)


async def test_start_resumes_rows_inserted_by_a_previous_process(db):
    now = int(time.time())
    left_behind = [
        dict(id="job_leftqueued", name="work", args={"n": 1}, status="queued", attempts=0),
        dict(id="job_leftrunning", name="work", args={"n": 2}, status="running", attempts=1),
        dict(id="job_leftdone", name="work", args={"n": 3}, status="succeeded", attempts=1),
        dict(id="job_leftfailed", name="work", args={"n": 4}, status="failed", attempts=3, last_error="x"),
        dict(id="job_leftunknown", name="no_such_job", args={}, status="queued", attempts=0),
    ]
    async with db.begin() as conn:
        for values in left_behind:
            await conn.execute(insert(jobs).values(created_at=now, updated_at=now, **values))
    ran = []

    async def work(ctx, n):
        ran.append(n)

    runner = make_runner(db, {"work": work}, max_attempts=2)
    await runner.start()
    await runner.wait_idle(LIVENESS)
    await runner.stop()

    assert ran == [1, 2]  # in enqueue order; finished jobs are left alone
    statuses = {r.id: (r.status, r.attempts) for r in await all_rows(db)}
    assert statuses["job_leftqueued"] == ("succeeded", 1)
    assert statuses["job_leftrunning"] == ("succeeded", 2)
    assert statuses["job_leftdone"] == ("succeeded", 1)
    assert statuses["job_leftfailed"] == ("failed", 3)
    # A job whose function no longer exists fails instead of blocking the start.
    assert statuses["job_leftunknown"] == ("failed", 2)
    assert "no_such_job" in (await row(db, "job_leftunknown")).last_error


async def test_unknown_job_name_raises_and_stores_nothing(db):
    runner = make_runner(db, {})
    with pytest.raises(KeyError, match="nope"):
        await runner.enqueue("nope", x=1)
    assert await all_rows(db) == []


async def test_wait_idle_times_out_while_a_job_is_stuck(db):
    release = asyncio.Event()

    async def stuck(ctx):
        await release.wait()

    runner = make_runner(db, {"stuck": stuck})
    job_id = await runner.enqueue("stuck")
    with pytest.raises(TimeoutError):
        await runner.wait_idle(0.2)
    release.set()
    await runner.wait_idle(LIVENESS)
    assert (await row(db, job_id)).status == "succeeded"
    await runner.stop()


async def test_a_job_runs_for_the_key_that_enqueued_it_also_after_a_restart(db):
    from app.core.caller import calling_key

    seen: list[tuple[str, str]] = []

    async def record(ctx, n: str) -> None:
        seen.append((n, calling_key.get()))

    first = make_runner(db, {"record": record})
    await first.stop()  # stopped before it ran anything: the job stays queued for the next process
    token = calling_key.set("key_abc")
    try:
        await first.enqueue("record", n="one")
    finally:
        calling_key.reset(token)
    second = make_runner(db, {"record": record})
    await second.start()  # a fresh task with no inherited context: the key comes from the job's row
    await second.wait_idle(LIVENESS)
    assert seen == [("one", "key_abc")]
    await second.stop()
