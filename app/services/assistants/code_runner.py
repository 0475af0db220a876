"""How many code_interpreter sandboxes run at once in this process.

Each sandbox may hold its memory cap and its tmpfs disk budget (512 MB each by default, and tmpfs is
memory too): without a process-wide cap, UNDERSTUDY_JOB_CONCURRENCY runs calling the tool at once could
take the host's memory between them however well each one is confined. Calls beyond the cap wait.
"""
from __future__ import annotations

import asyncio


class CodeRunner:
    def __init__(self, concurrency: int) -> None:
        self._slots = asyncio.Semaphore(max(1, concurrency))

    async def run(self, code: str, inputs: list, **limits) -> "SandboxResult":  # noqa: F821 (sandbox is imported lazily)
        """`limits`: run_python's own (timeout_s, …), e.g. the shell tool's timeout."""
        from app.services.assistants.sandbox import run_python  # subprocess machinery, loaded when first used

        async with self._slots:
            return await run_python(code, inputs=inputs, **limits)
