"""The arq JobQueue of team mode on the machine's Redis (skipped when none answers): a keyed job is
queued once, a job runs in an arq Worker built like `understudy worker`'s (leased claims), a finished
key can be enqueued again, and a job whose worker is SIGKILLed is taken up by another worker once the
lease lapses — not after arq's own (job-timeout-long) in-progress mark."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from arq import func
from arq.connections import RedisSettings
from arq.constants import in_progress_key_prefix
from arq.worker import Worker

from tests.conftest import ROOT
from tests.support.redis_db import claim_redis_db  # a Redis database of this test's own
from workers.arq_queue import QUEUE_NAME, ArqQueue
from workers.arq_worker import _leased

pytestmark = pytest.mark.anyio
LEASE = 2.0


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
def redis_url():
    with claim_redis_db() as url:  # flushed, and no other test session's workers on it
        yield url


@pytest.fixture
async def redis(redis_url):
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


@pytest.fixture
async def queue(redis, redis_url):
    q = await ArqQueue(redis_url).connect()
    yield q
    await q.stop()


def worker(redis_url: str, functions: dict, **options) -> Worker:
    """An arq Worker as build_worker makes it, over test functions."""
    return Worker(
        functions=[func(_leased(f, LEASE, 5), name=name, timeout=3600) for name, f in functions.items()],
        queue_name=QUEUE_NAME, redis_settings=RedisSettings.from_dsn(redis_url), keep_result=0, poll_delay=0.05,
        handle_signals=False, max_tries=5, **options,
    )


async def test_a_keyed_job_is_queued_once(queue, redis):
    first = await queue.enqueue("record", key="batch_1", batch_id="batch_1")
    again = await queue.enqueue("record", key="batch_1", batch_id="batch_1")
    assert first == again == "batch_1"
    other = await queue.enqueue("record", batch_id="batch_2")  # no key: a fresh id each time
    assert other != first and other.startswith("job_")
    assert await redis.zcard(QUEUE_NAME) == 2


async def test_jobs_run_in_a_worker_and_a_finished_key_is_free_again(queue, redis, redis_url):
    seen: list[tuple[str, int]] = []

    async def record(ctx, batch_id: str) -> None:
        # Running, the claim is a short lease, not arq's hour-long mark.
        ttl = await ctx["redis"].pttl(in_progress_key_prefix + ctx["job_id"])
        assert 0 < ttl <= LEASE * 1000
        seen.append((batch_id, ctx["max_tries"]))

    await queue.enqueue("record", key="batch_1", batch_id="batch_1")
    await worker(redis_url, {"record": record}, burst=True).main()
    assert seen == [("batch_1", 5)]
    await queue.enqueue("record", key="batch_1", batch_id="batch_1")  # keep_result=0: the key is free
    await worker(redis_url, {"record": record}, burst=True).main()
    assert seen == [("batch_1", 5), ("batch_1", 5)]
    assert await redis.zcard(QUEUE_NAME) == 0


async def test_a_failing_job_is_retried_with_backoff_up_to_max_tries(queue, redis, redis_url):
    attempts: dict[str, list[int]] = {"flaky": [], "broken": []}

    async def flaky(ctx, batch_id: str) -> None:
        attempts["flaky"].append(ctx["job_try"])
        if ctx["job_try"] < 3:
            raise ConnectionError("upstream went away")

    async def broken(ctx, batch_id: str) -> None:
        attempts["broken"].append(ctx["job_try"])
        raise ValueError("always")

    await queue.enqueue("flaky", key="batch_1", batch_id="batch_1")
    await queue.enqueue("broken", key="batch_2", batch_id="batch_2")
    started = time.monotonic()
    await asyncio.wait_for(worker(redis_url, {"flaky": flaky, "broken": broken}, burst=True).main(), 30)
    assert attempts == {"flaky": [1, 2, 3], "broken": [1, 2, 3, 4, 5]}  # max_tries=5, then dropped
    assert time.monotonic() - started >= 0.5 + 1 + 2 + 4 - 0.5  # backoff: 0.5 s, doubled each time
    assert await redis.zcard(QUEUE_NAME) == 0


DOOMED_WORKER = textwrap.dedent("""
    import asyncio, os, sys
    from arq import func
    from arq.connections import RedisSettings
    from arq.worker import Worker
    from workers.arq_queue import QUEUE_NAME
    from workers.arq_worker import _leased

    async def hold(ctx, batch_id):
        await ctx["redis"].set("test:started", os.getpid())
        await asyncio.sleep(3600)  # until SIGKILLed

    Worker(functions=[func(_leased(hold, float(sys.argv[2]), 5), name="hold", timeout=3600)], queue_name=QUEUE_NAME,
           redis_settings=RedisSettings.from_dsn(sys.argv[1]), keep_result=0, poll_delay=0.05).run()
""")


async def test_a_job_whose_worker_died_is_taken_up_after_the_lease(queue, redis, redis_url):
    doomed = subprocess.Popen([sys.executable, "-c", DOOMED_WORKER, redis_url, str(LEASE)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        await queue.enqueue("hold", key="batch_1", batch_id="batch_1")
        deadline = time.monotonic() + 60
        while await redis.get("test:started") is None:
            assert doomed.poll() is None and time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await asyncio.sleep(LEASE)  # past one lease: renewals keep the claim alive
        assert await redis.exists(in_progress_key_prefix + "batch_1")
        # Held: enqueueing the key again adds nothing, and a second worker cannot take it.
        assert await queue.enqueue("hold", key="batch_1", batch_id="batch_1") == "batch_1"
        assert await redis.zcard(QUEUE_NAME) == 1
        os.killpg(doomed.pid, signal.SIGKILL)
        killed_at = time.monotonic()
    finally:
        doomed.kill()
        doomed.wait()

    taken: list[float] = []

    async def hold(ctx, batch_id: str) -> None:
        taken.append(time.monotonic())
        assert ctx["job_try"] == 2  # the dead worker's attempt counted

    await asyncio.wait_for(worker(redis_url, {"hold": hold}, burst=True).main(), LEASE + 30)
    assert len(taken) == 1
    assert taken[0] - killed_at < LEASE + 8  # the lease, not arq's hour-long in-progress mark (slack for a loaded machine)
    assert await redis.zcard(QUEUE_NAME) == 0


async def test_a_job_runs_for_the_key_that_enqueued_it(queue, redis, redis_url):
    """Usage per issued key: the calling key travels with the job, not with whatever a task inherits."""
    from app.core.caller import calling_key

    seen: list[str] = []

    async def record(ctx, batch_id: str) -> None:
        seen.append(calling_key.get())

    token = calling_key.set("key_abc")
    try:
        await queue.enqueue("record", batch_id="batch_1")
    finally:
        calling_key.reset(token)
    await queue.enqueue("record", batch_id="batch_2")  # enqueued with no key (a sweep, open mode)
    await worker(redis_url, {"record": record}, burst=True).main()
    assert sorted(seen) == ["", "key_abc"]
