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
from workers.arq_queue import QUEUE_NAME, ArqQueue
from workers.arq_worker import _leased

pytestmark = pytest.mark.anyio
REDIS_URL = "redis://127.0.0.1:6379/11"
LEASE = 2.0


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
async def redis():
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as error:  # noqa: BLE001
        await client.aclose()
        pytest.skip(f"no Redis on 127.0.0.1:6379: {error}")
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


@pytest.fixture
async def queue(redis):
    q = await ArqQueue(REDIS_URL).connect()
    yield q
    await q.stop()


def worker(functions: dict, **options) -> Worker:
    """An arq Worker as build_worker makes it, over test functions."""
    return Worker(
        functions=[func(_leased(f, LEASE, 5), name=name, timeout=3600) for name, f in functions.items()],
        queue_name=QUEUE_NAME, redis_settings=RedisSettings.from_dsn(REDIS_URL), keep_result=0, poll_delay=0.05,
        handle_signals=False, max_tries=5, **options,
    )


async def test_a_keyed_job_is_queued_once(queue, redis):
    first = await queue.enqueue("record", key="batch_1", batch_id="batch_1")
    again = await queue.enqueue("record", key="batch_1", batch_id="batch_1")
    assert first == again == "batch_1"
    other = await queue.enqueue("record", batch_id="batch_2")  # no key: a fresh id each time
    assert other != first and other.startswith("job_")
    assert await redis.zcard(QUEUE_NAME) == 2


async def test_jobs_run_in_a_worker_and_a_finished_key_is_free_again(queue, redis):
    seen: list[tuple[str, int]] = []

    async def record(ctx, batch_id: str) -> None:
        # Running, the claim is a short lease, not arq's hour-long mark.
        ttl = await ctx["redis"].pttl(in_progress_key_prefix + ctx["job_id"])
        assert 0 < ttl <= LEASE * 1000
        seen.append((batch_id, ctx["max_tries"]))

    await queue.enqueue("record", key="batch_1", batch_id="batch_1")
    await worker({"record": record}, burst=True).main()
    assert seen == [("batch_1", 5)]
    await queue.enqueue("record", key="batch_1", batch_id="batch_1")  # keep_result=0: the key is free
    await worker({"record": record}, burst=True).main()
    assert seen == [("batch_1", 5), ("batch_1", 5)]
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


async def test_a_job_whose_worker_died_is_taken_up_after_the_lease(queue, redis):
    doomed = subprocess.Popen([sys.executable, "-c", DOOMED_WORKER, REDIS_URL, str(LEASE)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        await queue.enqueue("hold", key="batch_1", batch_id="batch_1")
        deadline = time.monotonic() + 30
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

    await asyncio.wait_for(worker({"hold": hold}, burst=True).main(), LEASE + 15)
    assert len(taken) == 1
    assert taken[0] - killed_at < LEASE + 2  # the lease, not arq's hour-long in-progress mark
    assert await redis.zcard(QUEUE_NAME) == 0
