"""The job-queue port: what services see of background work, `enqueue(name, key=…, **ids)`.

The in-process runner (workers/runner.py) implements it by default; arq on Redis in team mode. A job is
a plain `async def job(ctx, **ids)` registered in workers/jobs.py: arguments are ids, state lives in
the database, so either backend runs the same function.

A job runs on behalf of the issued key whose request enqueued it (usage is recorded per key): the key's
id travels with the job's arguments (`CALLER`), written by `with_caller` as it is enqueued and restored
by `run_as_caller` around the job, so both backends — and a job resumed after a restart — record usage
alike rather than depending on what a task happens to inherit.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable, Protocol

from app.core.caller import calling_key

JobFunction = Callable[..., Awaitable[Any]]
CALLER = "_api_key_id"


class JobQueue(Protocol):
    name: str

    async def enqueue(self, job: str, *, key: str | None = None, **args: Any) -> str:
        """Schedules `job(ctx, **args)` and returns the job's id. While a job with the same `key` is
        queued or running, enqueueing it again returns that job instead of adding another."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def with_caller(args: dict[str, Any]) -> dict[str, Any]:
    """The job's arguments, with the issued key of the request enqueueing it (if any)."""
    key_id = calling_key.get()
    return {**args, CALLER: key_id} if key_id else args


async def run_as_caller(function: JobFunction, ctx: dict, args: dict[str, Any]) -> Any:
    """Runs the job with `calling_key` set to the key it was enqueued for (and nothing else)."""
    args = dict(args)
    token = calling_key.set(args.pop(CALLER, ""))
    try:
        return await function(ctx, **args)
    finally:
        calling_key.reset(token)
