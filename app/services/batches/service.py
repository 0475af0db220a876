"""Batches: a JSONL file of requests run in the background through the live endpoints' own services.

The batch row's status is its truth (validating → in_progress → finalizing → completed, or failed /
cancelling → cancelled). The API (cancel) and the executing job both write it, so the job's writes are
compare-and-set on the status. Each finished line is a `batch_results` row, unique per custom_id:
a resumed batch skips lines that have one, so every custom_id is answered exactly once.
"""
from __future__ import annotations

import asyncio
import logging
import time

import msgspec
from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.core.errors import APIError, invalid_request, not_found
from app.core.ids import new_id, request_id
from app.core.metadata import check_metadata
from app.core.pagination import Page, fetch_page, list_body
from app.services.batches.lines import ENDPOINTS, call_line, parse_lines
from app.services.files import check_expires_after
from storage.models import Batch, BatchResult
from storage.prepared import Prepared

log = logging.getLogger("understudy.batches")
batches = Batch.__table__
results = BatchResult.__table__

WINDOW = 24 * 3600
TERMINAL = ("completed", "failed", "cancelled", "expired")
CONCURRENCY = 16
RETRIES = 3
FLUSH_EVERY, FLUSH_SECONDS = 64, 0.25

_INSERT = Prepared(insert(batches).values({c: bindparam(c) for c in ("id", "tenant_id", "created_at", "status", "data")}))
_SET = update(batches).where(batches.c.id == bindparam("b_id")).values(status=bindparam("b_status"), data=bindparam("b_data"))
_SAVE_IF = Prepared(_SET.where(or_(batches.c.status == bindparam("b_expect1"), batches.c.status == bindparam("b_expect2"))))
_GET = Prepared(select(batches.c.data, batches.c.tenant_id).where(batches.c.id == bindparam("id")))
_GET_OWN = Prepared(select(batches.c.data).where(batches.c.id == bindparam("id"), batches.c.tenant_id == bindparam("tenant_id")))
_ADD_RESULT = Prepared(
    insert(results).prefix_with("OR IGNORE", dialect="sqlite").values({c: bindparam(c) for c in ("batch_id", "custom_id", "line", "ok", "data")})
)
_DONE = Prepared(select(results.c.custom_id, results.c.ok).where(results.c.batch_id == bindparam("batch_id")))
_ALL = Prepared(select(results.c.ok, results.c.data).where(results.c.batch_id == bindparam("batch_id")).order_by(results.c.line))


def _save(batch: dict, expect: tuple[str, ...]):
    return (_SAVE_IF, {"b_id": batch["id"], "b_status": batch["status"], "b_data": batch, "b_expect1": expect[0], "b_expect2": expect[-1]})


class BatchesService:
    def __init__(self, db, blobs, files, queue, platform_ref, settings) -> None:
        self._db, self._blobs, self._files, self._queue, self._platform, self._settings = db, blobs, files, queue, platform_ref, settings
        self.concurrency = int(getattr(settings, "batch_concurrency", 0) or CONCURRENCY)

    # ---- the API ----

    async def create(self, tenant_id: str, params: dict) -> dict:
        endpoint = params.get("endpoint")
        if endpoint not in ENDPOINTS:
            supported = ", ".join(f"'{e}'" for e in ENDPOINTS)
            raise invalid_request(f"Invalid value: '{endpoint}'. Supported values are: {supported}.", param="endpoint", code="invalid_value")
        if params.get("completion_window") != "24h":
            raise invalid_request(
                f"Invalid value: '{params.get('completion_window')}'. Supported values are: '24h'.", param="completion_window", code="invalid_value"
            )
        metadata = check_metadata(params.get("metadata"))
        check_expires_after(params.get("output_expires_after"))
        file_id = params.get("input_file_id")
        if not isinstance(file_id, str):
            raise invalid_request("Missing required parameter: 'input_file_id'.", param="input_file_id", code="missing_required_parameter")
        row = await self._files.get_row(tenant_id, file_id)
        if row.purpose != "batch":
            raise invalid_request(
                f"File {file_id} has purpose '{row.purpose}'; a batch's input file must have purpose 'batch'.", param="input_file_id",
                code="invalid_value",
            )
        now = int(time.time())
        batch = {
            "id": new_id("batch_"), "object": "batch", "endpoint": endpoint, "model": None, "errors": None, "input_file_id": file_id,
            "completion_window": "24h", "status": "validating", "output_file_id": None, "error_file_id": None, "created_at": now,
            "in_progress_at": None, "expires_at": now + WINDOW, "finalizing_at": None, "completed_at": None, "failed_at": None,
            "expired_at": None, "cancelling_at": None, "cancelled_at": None, "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": metadata, "usage": None,
        }
        await self._db.write([(_INSERT, {"id": batch["id"], "tenant_id": tenant_id, "created_at": now, "status": "validating", "data": batch})])
        await self._platform().queue.enqueue("execute_batch", key=batch["id"], batch_id=batch["id"])
        return _wire(batch)

    async def get(self, tenant_id: str, batch_id: str) -> dict:
        return _wire(await self._own(tenant_id, batch_id))

    async def _own(self, tenant_id: str, batch_id: str) -> dict:
        row = await self._db.fetch_one(_GET_OWN, {"id": batch_id, "tenant_id": tenant_id})
        if row is None:
            raise not_found("Batch", batch_id, param="batch_id")
        return row.data

    async def list(self, tenant_id: str, page: Page) -> dict:
        rows, has_more = await fetch_page(self._db, batches, page, {"tenant_id": tenant_id}, columns=(batches.c.data,))
        return list_body([_wire(row.data) for row in rows], has_more)

    async def cancel(self, tenant_id: str, batch_id: str) -> dict:
        for _ in range(20):
            batch = await self._own(tenant_id, batch_id)
            if batch["status"] in ("cancelling", "cancelled"):
                return _wire(batch)
            if batch["status"] not in ("validating", "in_progress"):
                raise APIError(f"Cannot cancel a batch with status '{batch['status']}'.", status_code=409, code="batch_not_cancellable")
            expected = batch["status"]
            batch = {**batch, "status": "cancelling", "cancelling_at": int(time.time())}
            if await self._db.write([_save(batch, (expected,))], guard=True):
                return _wire(batch)
        raise APIError("The batch is changing status; try again.", status_code=409)

    # ---- the job ----

    async def execute(self, batch_id: str) -> None:
        row = await self._db.fetch_one(_GET, {"id": batch_id})
        if row is None or row.data["status"] in TERMINAL:
            return
        batch, tenant = row.data, row.tenant_id
        lines = None
        if batch["status"] == "validating":
            lines, errors, model = await self._validate(tenant, batch)
            now = int(time.time())
            if errors:
                failed = {**batch, "status": "failed", "failed_at": now, "errors": {"object": "list", "data": errors}}
                if await self._db.write([_save(failed, ("validating",))], guard=True):
                    return
            else:
                started = {**batch, "status": "in_progress", "in_progress_at": now, "model": model,
                           "request_counts": {"total": len(lines), "completed": 0, "failed": 0}}
                if await self._db.write([_save(started, ("validating",))], guard=True):
                    batch = started
            batch = await self._reload(batch, batch_id)
            if batch["status"] == "cancelling" and lines is None:
                lines = []
        if batch["status"] in ("in_progress", "cancelling"):
            if lines is None:
                lines = parse_lines(await self._files.read_all(tenant, batch["input_file_id"]), batch["endpoint"])[0]
            batch = await _Execution(self, tenant, batch, lines).run()
        if batch["status"] in ("finalizing", "cancelling"):
            await self._finalize(tenant, batch)

    async def _reload(self, batch: dict, batch_id: str) -> dict:
        row = await self._db.fetch_one(_GET, {"id": batch_id})
        return row.data if row is not None else batch

    async def _validate(self, tenant: str, batch: dict):
        try:
            data = await self._files.read_all(tenant, batch["input_file_id"])
        except APIError as error:
            return [], [{"code": "invalid_file", "message": error.message, "param": "input_file_id", "line": None}], None
        return parse_lines(data, batch["endpoint"])

    async def _finalize(self, tenant: str, batch: dict) -> None:
        rows = await self._db.fetch_all(_ALL, {"batch_id": batch["id"]})
        good = [r.data for r in rows if r.ok]
        bad = [r.data for r in rows if not r.ok]
        output = await self._write_file(tenant, batch, good, "output")
        error = await self._write_file(tenant, batch, bad, "error")
        now = int(time.time())
        done = {**batch, "output_file_id": output, "error_file_id": error,
                "request_counts": {**batch["request_counts"], "completed": len(good), "failed": len(bad)}}
        if batch["status"] == "cancelling":
            done.update(status="cancelled", cancelled_at=now)
        else:
            done.update(status="completed", completed_at=now, usage=_usage(good))
        if not await self._db.write([_save(done, (batch["status"],))], guard=True):
            log.warning("batch %s changed status while finalizing", batch["id"])

    async def _write_file(self, tenant: str, batch: dict, lines: list[dict], kind: str) -> str | None:
        if not lines:
            return None
        data = b"".join(msgspec.json.encode(line) + b"\n" for line in lines)
        made = await self._files.create_from_bytes(tenant, data, filename=f"{batch['id']}_{kind}.jsonl", purpose="batch_output")
        return made["id"]


class _Execution:
    """The lines of one in-progress batch, run with bounded concurrency; results written in small
    transactions with the batch's request counts (compare-and-set: a cancel is noticed there)."""

    def __init__(self, service: BatchesService, tenant: str, batch: dict, lines: list[dict]) -> None:
        self.s, self.tenant, self.batch, self.lines = service, tenant, batch, lines
        self.pending: list[dict] = []
        self.last_flush = time.monotonic()
        self.lock = asyncio.Lock()
        self.stopped = batch["status"] != "in_progress"

    async def run(self) -> dict:
        done = {r.custom_id: r.ok for r in await self.s._db.fetch_all(_DONE, {"batch_id": self.batch["id"]})}
        ok = sum(1 for v in done.values() if v)
        self.batch = {**self.batch, "request_counts": {"total": len(self.lines), "completed": ok, "failed": len(done) - ok}}
        slots = asyncio.Semaphore(self.s.concurrency)
        tasks: set[asyncio.Task] = set()
        for line in self.lines:
            if line["custom_id"] in done:
                continue
            await slots.acquire()
            if self.stopped:
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
        platform = self.s._platform()
        attempt = 0
        while True:
            try:
                body = await call_line(platform, self.tenant, self.batch["endpoint"], line["body"])
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
            ops = [(_ADD_RESULT, row) for row in pending]
            if await self._write([_save(snapshot, (self.batch["status"],)), *ops], pending):
                self.batch = {**snapshot, "request_counts": self.batch["request_counts"]} if not final else snapshot
                return
            # The API moved the batch (a cancel): keep the results, follow its status.
            current = await self.s._reload(self.batch, self.batch["id"])
            self.stopped = current["status"] != "in_progress"
            counts = self.batch["request_counts"]
            self.batch = {**current, "request_counts": counts}
            if current["status"] in TERMINAL:
                return
            snapshot = {**self.batch, "request_counts": dict(counts)}
            await self._write([_save(snapshot, (current["status"],)), *ops], pending)

    async def _write(self, ops: list, pending: list[dict]) -> bool:
        try:
            return await self.s._db.write(ops, guard=True)
        except IntegrityError:  # PostgreSQL: a line already written by an earlier attempt; one at a time
            for op in ops[1:]:
                try:
                    await self.s._db.write([op])
                except IntegrityError:
                    pass
            return await self.s._db.write(ops[:1], guard=True)


def _usage(lines: list[dict]) -> dict:
    into = out = cached = reasoning = 0
    for line in lines:
        usage = (line["response"].get("body") or {}).get("usage") or {}
        into += usage.get("prompt_tokens") or usage.get("input_tokens") or 0
        out += usage.get("completion_tokens") or usage.get("output_tokens") or 0
        details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
        cached += details.get("cached_tokens") or 0
        details = usage.get("completion_tokens_details") or usage.get("output_tokens_details") or {}
        reasoning += details.get("reasoning_tokens") or 0
    return {"input_tokens": into, "input_tokens_details": {"cached_tokens": cached}, "output_tokens": out,
            "output_tokens_details": {"reasoning_tokens": reasoning}, "total_tokens": into + out}


# Optional and non-nullable in OpenAI's schema: absent rather than null (the SDK reads either as None).
_ABSENT_WHEN_NULL = ("usage", "model", "errors", "failed_at", "expired_at", "cancelling_at", "cancelled_at")


def _wire(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if v is not None or k not in _ABSENT_WHEN_NULL}
