"""Where the offline model's heavy work runs: a small thread pool of its own.

Generating schema-valid values, counting tokens of a long prompt or embedding a big batch is CPU work
of up to a second or two (bounded: schema_limits.py). Off the event loop it must be, but in asyncio's
default pool (cpu + 4 threads) a burst of hostile requests would keep six threads busy in Python, and
the event loop, which needs the GIL like them, would wait behind all of them: `/healthz` took over a
second. Two threads at most (one per core here) leave the loop a fair share; requests beyond them queue.
"""
from __future__ import annotations

import asyncio
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

T = TypeVar("T")

WORKERS = max(1, min(2, os.cpu_count() or 1))
_POOL = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="offline-model")


async def offloaded(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in the offline model's pool."""
    return await asyncio.get_running_loop().run_in_executor(_POOL, functools.partial(fn, *args))
