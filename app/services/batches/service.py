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
from app.core.ids import check_prefix, new_id, request_id
from app.core.metadata import check_metadata
from app.core.pagination import Page, fetch_page, list_body
from app.services.batches import messages as anthropic
from app.services.batches.lines import ENDPOINTS, call_line, parse_lines
from app.services.usage import in_batch
from app.services.files import check_expires_after
from storage.models import Batch, BatchResult
from storage.prepared import Prepared

log = logging.getLogger("understudy.batches")
batches = Batch.__table__
results = BatchResult.__table__

TERMINAL = ("completed", "failed", "cancelled", "expired")
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
_DELETE = Prepared(batches.delete().where(batches.c.id == bindparam("id")))
_DELETE_RESULTS = Prepared(results.delete().where(results.c.batch_id == bindparam("id")))
_DONE = Prepared(select(results.c.custom_id, results.c.ok).where(results.c.batch_id == bindparam("batch_id")))
_ALL = Prepared(select(results.c.ok, results.c.data).where(results.c.batch_id == bindparam("batch_id")).order_by(results.c.line))
# OpenAI's batches and Anthropic's Message Batches share the table; each API lists only its own.
_OPENAI_ONLY = batches.c.id.like("batch_%")
_ANTHROPIC_ONLY = batches.c.id.like(anthropic.ID_PREFIX + "%")
EXPIRED_ERROR = {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}


def _save(batch: dict, expect: tuple[str, ...]):
    return (_SAVE_IF, {"b_id": batch["id"], "b_status": batch["status"], "b_data": batch, "b_expect1": expect[0], "b_expect2": expect[-1]})


class BatchesService:
    def __init__(self, db, blobs, files, queue, platform_ref, settings) -> None:
        self._db, self._blobs, self._files, self._queue, self._platform, self._settings = db, blobs, files, queue, platform_ref, settings
        self.concurrency = settings.batch_concurrency
        self.window = settings.batch_window_seconds

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
        output_expires_after = params.get("output_expires_after")
        file_id = params.get("input_file_id")
        if not isinstance(file_id, str):
            raise invalid_request("Missing required parameter: 'input_file_id'.", param="input_file_id", code="missing_required_parameter")
        row = await self._files.get_row(tenant_id, file_id)
        if row.purpose != "batch":
            raise invalid_request(
                f"File {file_id} has purpose '{row.purpose}'; a batch's input file must have purpose 'batch'.", param="input_file_id",
                code="invalid_value",
            )
        batch = self._new_batch("batch_", endpoint, metadata)
        batch.update(input_file_id=file_id, output_expires_after=output_expires_after)
        await self._start(tenant_id, batch)
        return _wire(batch)

    def _new_batch(self, prefix: str, endpoint: str, metadata: dict | None) -> dict:
        now = int(time.time())
        return {
            "id": new_id(prefix), "object": "batch", "endpoint": endpoint, "model": None, "errors": None, "input_file_id": None,
            "completion_window": "24h", "status": "validating", "output_file_id": None, "error_file_id": None, "created_at": now,
            "in_progress_at": None, "expires_at": now + self.window, "finalizing_at": None, "completed_at": None, "failed_at": None,
            "expired_at": None, "cancelling_at": None, "cancelled_at": None, "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": metadata, "usage": None,
        }

    async def _start(self, tenant_id: str, batch: dict) -> None:
        row = {"id": batch["id"], "tenant_id": tenant_id, "created_at": batch["created_at"], "status": "validating", "data": batch}
        await self._db.write([(_INSERT, row)])
        await self._platform().queue.enqueue("execute_batch", key=batch["id"], batch_id=batch["id"])

    async def get(self, tenant_id: str, batch_id: str) -> dict:
        return _wire(await self._own(tenant_id, batch_id))

    async def _own(self, tenant_id: str, batch_id: str, prefix: str = "batch_") -> dict:
        if prefix == "batch_":
            check_prefix(batch_id, prefix, "batch_id")
        row = None
        if batch_id.startswith(prefix):
            row = await self._db.fetch_one(_GET_OWN, {"id": batch_id, "tenant_id": tenant_id})
        if row is None:
            raise not_found("Batch" if prefix == "batch_" else "MessageBatch", batch_id, param="batch_id")
        return row.data

    async def list(self, tenant_id: str, page: Page) -> dict:
        rows, has_more = await fetch_page(self._db, batches, page, {"tenant_id": tenant_id}, (_OPENAI_ONLY,), columns=(batches.c.data,))
        return list_body([_wire(row.data) for row in rows], has_more)

    async def cancel(self, tenant_id: str, batch_id: str) -> dict:
        return _wire(await self._cancel(tenant_id, batch_id, "batch_"))

    async def _cancel(self, tenant_id: str, batch_id: str, prefix: str) -> dict:
        for _ in range(20):
            batch = await self._own(tenant_id, batch_id, prefix)
            if batch["status"] in ("cancelling", "cancelled"):
                return batch
            if batch["status"] not in ("validating", "in_progress"):
                raise APIError(f"Cannot cancel a batch with status '{batch['status']}'.", status_code=409, code="batch_not_cancellable")
            expected = batch["status"]
            batch = {**batch, "status": "cancelling", "cancelling_at": int(time.time())}
            if await self._db.write([_save(batch, (expected,))], guard=True):
                return batch
        raise APIError("The batch is changing status; try again.", status_code=409)

    # ---- Anthropic Message Batches: the same engine, Anthropic's shapes ----

    async def create_messages(self, tenant_id: str, body: dict, base_url: str) -> dict:
        lines = anthropic.parse_requests(body)
        batch = self._new_batch(anthropic.ID_PREFIX, anthropic.MESSAGES, None)
        batch["input_blob"] = f"batches/{batch['id']}/requests.jsonl"
        batch["request_counts"]["total"] = len(lines)
        await self._blobs.put(batch["input_blob"], b"".join(msgspec.json.encode(line) + b"\n" for line in lines))
        await self._start(tenant_id, batch)
        return anthropic.message_batch(batch, base_url)

    async def get_messages(self, tenant_id: str, batch_id: str, base_url: str) -> dict:
        return anthropic.message_batch(await self._own(tenant_id, batch_id, anthropic.ID_PREFIX), base_url)

    async def list_messages(self, tenant_id: str, page: Page, base_url: str) -> dict:
        rows, has_more = await fetch_page(self._db, batches, page, {"tenant_id": tenant_id}, (_ANTHROPIC_ONLY,), columns=(batches.c.data,))
        data = [anthropic.message_batch(row.data, base_url) for row in rows]
        return {"data": data, "has_more": has_more, "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}

    async def cancel_messages(self, tenant_id: str, batch_id: str, base_url: str) -> dict:
        try:
            batch = await self._cancel(tenant_id, batch_id, anthropic.ID_PREFIX)
        except APIError as error:  # a batch that has ended (or is ending) is returned as it is
            if error.status_code != 409:
                raise
            batch = await self._own(tenant_id, batch_id, anthropic.ID_PREFIX)
        return anthropic.message_batch(batch, base_url)

    async def delete_messages(self, tenant_id: str, batch_id: str) -> dict:
        batch = await self._own(tenant_id, batch_id, anthropic.ID_PREFIX)
        if batch["status"] not in anthropic.ENDED:
            raise invalid_request(f"Message Batch {batch_id} is still processing: cancel it, or wait for it to end, before deleting it.")
        await self._db.write([(_DELETE_RESULTS, {"id": batch_id}), (_DELETE, {"id": batch_id})])
        await self._blobs.delete(batch["input_blob"])
        return {"id": batch_id, "type": "message_batch_deleted"}

    async def messages_results(self, tenant_id: str, batch_id: str) -> bytes:
        batch = await self._own(tenant_id, batch_id, anthropic.ID_PREFIX)
        if batch["status"] not in anthropic.ENDED:
            raise APIError(f"Message Batch {batch_id} has not ended yet: its results are available once processing_status is 'ended'.",
                           status_code=404)
        rows = await self._db.fetch_all(_ALL, {"batch_id": batch_id})
        return b"".join(msgspec.json.encode(row.data) + b"\n" for row in rows)

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
                lines = (await self._read_lines(tenant, batch))[0]
            batch = await _Execution(self, tenant, batch, lines).run()
        if batch["status"] in ("finalizing", "cancelling"):
            await self._finalize(tenant, batch)

    async def fail(self, batch_id: str, message: str) -> None:
        """The job gave up on the batch: failed, with the reason (the lines answered so far stay recorded)."""
        row = await self._db.fetch_one(_GET, {"id": batch_id})
        if row is None or row.data["status"] in TERMINAL:
            return
        batch = row.data
        failed = {**batch, "status": "failed", "failed_at": int(time.time()),
                  "errors": {"object": "list", "data": [{"code": "server_error", "message": message, "param": None, "line": None}]}}
        await self._db.write([_save(failed, (batch["status"],))], guard=True)

    async def _reload(self, batch: dict, batch_id: str) -> dict:
        row = await self._db.fetch_one(_GET, {"id": batch_id})
        return row.data if row is not None else batch

    async def _validate(self, tenant: str, batch: dict):
        try:
            return await self._read_lines(tenant, batch)
        except APIError as error:
            return [], [{"code": "invalid_file", "message": error.message, "param": "input_file_id", "line": None}], None

    async def _read_lines(self, tenant: str, batch: dict) -> tuple[list[dict], list[dict], str | None]:
        if batch["endpoint"] == anthropic.MESSAGES:  # checked at create time
            data = await self._blobs.read_all(batch["input_blob"])
            return [msgspec.json.decode(line) for line in data.splitlines()], [], None
        lines, errors, model = parse_lines(await self._files.read_all(tenant, batch["input_file_id"]), batch["endpoint"])
        if not errors and model is not None:
            try:
                self._platform().inference.provider_for(tenant, model)
            except APIError as error:
                if error.status_code != 404:
                    raise
                first = next((line["line"] for line in lines if line["body"].get("model") == model), None)
                errors = [{"code": "model_not_found", "message": f"The model '{model}' does not exist or you do not have access to it.",
                           "param": "body.model", "line": first}]
        return lines, errors, model

    async def _finalize(self, tenant: str, batch: dict) -> None:
        rows = await self._db.fetch_all(_ALL, {"batch_id": batch["id"]})
        # A batch reaches finalizing with lines unanswered only when its completion window ran out.
        expired = batch["status"] == "finalizing" and len(rows) < batch["request_counts"]["total"]
        messages = batch["endpoint"] == anthropic.MESSAGES
        if expired or (messages and batch["status"] == "cancelling"):
            rows = await self._close_unanswered(tenant, batch, {r.data["custom_id"] for r in rows}, "expired" if expired else "canceled")
        now = int(time.time())
        if messages:
            kinds = [r.data["result"]["type"] for r in rows]
            done = {**batch, "request_counts": {**batch["request_counts"], **{kind: kinds.count(kind) for kind in anthropic.RESULT_TYPES}}}
        else:
            good = [r.data for r in rows if r.ok]
            bad = [r.data for r in rows if not r.ok]
            output = await self._write_file(tenant, batch, good, "output")
            error = await self._write_file(tenant, batch, bad, "error")
            done = {**batch, "output_file_id": output, "error_file_id": error, "usage": _usage(good),
                    "request_counts": {**batch["request_counts"], "completed": len(good), "failed": len(bad)}}
        if batch["status"] == "cancelling":
            done.update(status="cancelled", cancelled_at=now)
        elif expired:
            done.update(status="expired", expired_at=now)
        else:
            done.update(status="completed", completed_at=now)
        if not await self._db.write([_save(done, (batch["status"],))], guard=True):
            log.warning("batch %s changed status while finalizing", batch["id"])

    async def _close_unanswered(self, tenant: str, batch: dict, answered: set[str], kind: str) -> list:
        """Result rows for the lines a cancelled or expired batch never ran: Anthropic reports each one
        (`canceled` / `expired`); OpenAI lists expired requests in the error file."""
        lines = [line for line in (await self._read_lines(tenant, batch))[0] if line["custom_id"] not in answered]
        rows = []
        for line in lines:
            if batch["endpoint"] == anthropic.MESSAGES:
                data = anthropic.not_run(line["custom_id"], kind)
            else:
                data = {"id": new_id("batch_req_"), "custom_id": line["custom_id"], "response": None, "error": EXPIRED_ERROR}
            rows.append({"batch_id": batch["id"], "custom_id": line["custom_id"], "line": line["line"], "ok": False, "data": data})
        if rows:
            await self._db.write([(_ADD_RESULT, row) for row in rows])
        return await self._db.fetch_all(_ALL, {"batch_id": batch["id"]})

    async def _write_file(self, tenant: str, batch: dict, lines: list[dict], kind: str) -> str | None:
        if not lines:
            return None
        data = b"".join(msgspec.json.encode(line) + b"\n" for line in lines)
        made = await self._files.create_from_bytes(tenant, data, filename=f"{batch['id']}_{kind}.jsonl", purpose="batch_output",
                                                   expires_after=batch.get("output_expires_after"))
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
        self.messages = batch["endpoint"] == anthropic.MESSAGES

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
        platform = self.s._platform()
        in_batch.set(True)  # this line's task only: its usage is recorded as batch usage
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


_INTERNAL = ("output_expires_after", "input_blob")


def _wire(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if (v is not None or k not in _ABSENT_WHEN_NULL) and k not in _INTERNAL}
