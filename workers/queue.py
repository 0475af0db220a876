"""What the services see of background work: `enqueue(name, key=…, **ids)`.

The in-process runner (workers/runner.py) implements it by default; arq on Redis in team mode. A job is
a plain `async def job(ctx, **ids)` registered in workers/jobs.py: arguments are ids, state lives in
the database, so either backend runs the same function.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable, Protocol

JobFunction = Callable[..., Awaitable[Any]]


class JobQueue(Protocol):
    name: str

    async def enqueue(self, job: str, *, key: str | None = None, **args: Any) -> str:
        """Schedules `job(ctx, **args)` and returns the job's id. While a job with the same `key` is
        queued or running, enqueueing it again returns that job instead of adding another."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
