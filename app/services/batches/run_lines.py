"""The lines of one in-progress batch, run with bounded concurrency through the live endpoints' services.

Results are written in small transactions together with the batch's request counts, each a
compare-and-set on the batch's status: that is where a cancel from the API is noticed (the lines
already answered are kept, and no new ones start).
"""
from __future__ import annotations

import asyncio
import logging
import time

from app.core.errors import APIError
from app.core.ids import new_id, request_id
from app.services.batches import messages as anthropic
from app.services.batches.lifecycle import TERMINAL
from app.services.batches.lines import LineServices, call_line
from app.services.batches.store import BatchStore
from app.core.caller import in_batch

log = logging.getLogger("understudy.batches")

RETRIES = 3
FLUSH_EVERY, FLUSH_SECONDS = 64, 0.25


class RunLines:
    def __init__(self, store: BatchStore, services: LineServices, tenant: str, batch: dict, lines: list[dict], concurrency: int) -> None:
        self.store, self.services, self.tenant, self.batch, self.lines = store, services, tenant, batch, lines
        self.concurrency = concurrency
        self.pending: list[dict] = []
        self.last_flush = time.monotonic()
        self.lock = asyncio.Lock()
        self.stopped = batch["status"] != "in_progress"
        self.messages = batch["endpoint"] == anthropic.MESSAGES

    async def run(self) -> dict:
        """The batch as it stands once its lines have run (or stopped): `finalizing`, or what the API moved it to."""
        done = await self.store.answered(self.batch["id"])
        ok = sum(1 for v in done.values() if v)
        self.batch = {**self.batch, "request_counts": {"total": len(self.lines), "completed": ok, "failed": len(done) - ok}}
        slots = asyncio.Semaphore(self.concurrency)
        tasks: set[asyncio.Task] = set()
        for line in self.lines:
            if line["custom_id"] in done:
                continue
            await slots.acquire()
            if self.stopped or time.time() >= self.batch["expires_at"]:  # cancelled, or the completion window ran out
                slots.release()
                break
            task = asyncio.create_task(self._one(line, slots))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
        await self._flush(final=True)
        return self.batch

    async def _one(self, line: dict, slots: asyncio.Semaphore) -> None:
        try:
            result = await self._call(line)
        finally:
            slots.release()
        self.pending.append(result)
        counts = self.batch["request_counts"]
        counts["completed" if result["ok"] else "failed"] += 1
        if len(self.pending) >= FLUSH_EVERY or time.monotonic() - self.last_flush > FLUSH_SECONDS:
            await self._flush()

    async def _call(self, line: dict) -> dict:
        in_batch.set(True)  # this line's task only: its usage is recorded as batch usage
        attempt = 0
        while True:
            try:
                body = await call_line(self.services, self.tenant, self.batch["endpoint"], line["body"])
                response = {"status_code": 200, "request_id": request_id(), "body": body}
                ok = True
            except APIError as error:
                if (error.status_code == 429 or error.status_code >= 500) and attempt < RETRIES:
                    attempt += 1
                    await asyncio.sleep(0.1 * 2 ** attempt)
                    continue
                response = {"status_code": error.status_code, "request_id": request_id(), "body": error.body()}
                ok = False
            except Exception as error:  # a bug in one line's path must not sink the batch
                log.exception("batch line %s failed", line["custom_id"])
                response = {"status_code": 500, "request_id": request_id(),
                            "body": {"error": {"message": str(error) or type(error).__name__, "type": "server_error", "param": None, "code": None}}}
                ok = False
            if self.messages:
                data = anthropic.answered(line["custom_id"], response)
            else:
                data = {"id": new_id("batch_req_"), "custom_id": line["custom_id"], "response": response, "error": None}
            return {"batch_id": self.batch["id"], "custom_id": line["custom_id"], "line": line["line"], "ok": ok, "data": data}

    async def _flush(self, final: bool = False) -> None:
        async with self.lock:
            pending, self.pending = self.pending, []
            self.last_flush = time.monotonic()
            batch = self.batch
            if final:
                now = int(time.time())
                batch = {**batch, "status": "finalizing", "finalizing_at": now} if batch["status"] == "in_progress" else batch
            snapshot = {**batch, "request_counts": dict(batch["request_counts"])}
            if await self.store.save_with_results(snapshot, self.batch["status"], pending):
                self.batch = {**snapshot, "request_counts": self.batch["request_counts"]} if not final else snapshot
                return
            # The API moved the batch (a cancel): keep the results, follow its status.
            found = await self.store.get(self.batch["id"])
            current = found[0] if found is not None else self.batch
            self.stopped = current["status"] != "in_progress"
            counts = self.batch["request_counts"]
            self.batch = {**current, "request_counts": counts}
            if current["status"] in TERMINAL:
                return
            snapshot = {**self.batch, "request_counts": dict(counts)}
            await self.store.save_with_results(snapshot, current["status"], pending)
