"""`understudy worker`: an arq worker running the same job functions as the in-process runner.

Each worker process opens its own Platform (database, blobs, event bus, the arq queue for jobs that
enqueue jobs) and runs up to `job_concurrency` jobs at once.

A job's claim is a lease: arq marks a job in progress for its whole timeout, so a worker killed
mid-job would hold it for that long. While a job runs here its in-progress mark is renewed every few
seconds with a short expiry; when the worker dies the mark lapses within `job_lease_seconds` and
another worker takes the job up again (arq keeps it queued until it finishes). The job functions are
idempotent and resumable (their truth is in the database), so the second run finishes the work
without repeating what the first one wrote.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from arq import func
from arq.connections import RedisSettings
from arq.constants import in_progress_key_prefix
from arq.worker import Retry, Worker

from app.core.queue import run_as_caller
from app.settings import Settings
from workers.arq_queue import QUEUE_NAME
from workers.jobs import JOBS

log = logging.getLogger("understudy.worker")
RETRY_DELAY = 0.5  # seconds before a failed job's second attempt; doubled for each further one


def _leased(function, lease_seconds: float, max_tries: int):
    async def job(ctx: dict, **args: Any) -> Any:
        key = in_progress_key_prefix + ctx["job_id"]
        redis = ctx["redis"]

        async def renew() -> None:
            while True:
                await asyncio.sleep(lease_seconds / 3)
                try:
                    await redis.pexpire(key, int(lease_seconds * 1000))
                except Exception:  # a Redis hiccup must not end the renewals (two more tries per lease)
                    log.warning("could not renew the lease of job %s", ctx["job_id"], exc_info=True)

        # The lease replaces arq's job-timeout-long mark before the job does anything.
        await redis.pexpire(key, int(lease_seconds * 1000))
        renewer = asyncio.create_task(renew())
        try:
            return await run_as_caller(function, {**ctx, "max_tries": max_tries}, args)
        except Exception as error:
            # As the in-process runner does: a failed attempt is retried with backoff until the last one
            # (arq itself only retries on Retry; any other exception would drop the job at once).
            attempt = ctx.get("job_try", 1)
            if attempt >= max_tries:
                raise
            log.warning("job %s failed on attempt %d of %d, retrying: %r", ctx["job_id"], attempt, max_tries, error)
            raise Retry(defer=RETRY_DELAY * 2 ** (attempt - 1)) from error
        finally:
            renewer.cancel()

    job.__qualname__ = function.__name__
    return job


async def _startup(ctx: dict) -> None:
    from app.platform import open_platform

    ctx["platform"] = await open_platform(ctx["settings"], run_jobs=False)
    # Load tiktoken's encoding before the first job needs it, rather than adding its load time to whichever
    # job arrives first (the model catalogue is a small JSON file, read as the platform opens).
    from app.core.tokens import count_tokens

    await asyncio.get_running_loop().run_in_executor(None, count_tokens, "warm up")


async def _shutdown(ctx: dict) -> None:
    platform = ctx.get("platform")
    if platform is not None:
        await platform.close()


def build_worker(settings: Settings) -> Worker:
    if not settings.redis_url:
        raise SystemExit("understudy worker needs UNDERSTUDY_REDIS_URL (team mode)")
    functions = [
        func(_leased(function, settings.job_lease_seconds, settings.job_max_tries), name=name, timeout=settings.job_timeout_seconds)
        for name, function in JOBS.items()
    ]
    return Worker(
        functions=functions,
        queue_name=QUEUE_NAME,
        redis_settings=RedisSettings.from_dsn(settings.redis_url),
        on_startup=_startup,
        on_shutdown=_shutdown,
        ctx={"settings": settings},
        max_jobs=settings.job_concurrency,
        max_tries=settings.job_max_tries,
        keep_result=0,  # a finished job's id (its key) can be enqueued again at once
        poll_delay=0.05,  # arq polls its queue: this bounds how long a new run waits for a worker
        handle_signals=True,
    )


def check_arq_internals() -> None:
    """The lease (`_leased`) renews the key arq's worker marks a running job with: fail loudly at start-up
    if arq stops naming it `in_progress_key_prefix + job_id` (pyproject.toml bounds arq for this)."""
    import arq.worker

    if not isinstance(in_progress_key_prefix, str) or arq.worker.__dict__.get("in_progress_key_prefix") != in_progress_key_prefix:
        raise RuntimeError("arq changed how its worker marks a job in progress (arq.constants.in_progress_key_prefix); "
                           "install the versions in requirements.lock (make install)")


def run_worker(settings: Settings) -> None:
    check_arq_internals()
    worker = build_worker(settings)
    log.info("arq worker on %s, %d job(s) at once", settings.redis_url, settings.job_concurrency)
    worker.run()
