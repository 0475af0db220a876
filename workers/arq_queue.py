"""The JobQueue of team mode: jobs go to arq on Redis and any `understudy worker` process runs them.

A job's `key` becomes arq's job id, so while a job with that key is queued or running, enqueueing it
again adds nothing (arq refuses a job id it already holds; workers keep no results, so a finished
key is free again).
"""
from __future__ import annotations

from typing import Any

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from app.core.ids import new_id
from app.core.queue import with_caller

QUEUE_NAME = "understudy:jobs"


class ArqQueue:
    name = "arq"

    def __init__(self, redis_url: str) -> None:
        self._settings = RedisSettings.from_dsn(redis_url)
        self._pool: ArqRedis | None = None

    async def connect(self) -> "ArqQueue":
        self._pool = await create_pool(self._settings, default_queue_name=QUEUE_NAME)
        return self

    async def enqueue(self, job: str, *, key: str | None = None, **args: Any) -> str:
        job_id = key or new_id("job_")
        await self._pool.enqueue_job(job, _job_id=job_id, **with_caller(args))  # None when that id is already queued or running
        return job_id

    async def start(self) -> None:
        """Jobs run in the worker processes, not here."""

    async def stop(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None
