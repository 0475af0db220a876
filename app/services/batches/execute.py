"""The `execute_batch` job: validate the input, run the lines with bounded concurrency through the live
endpoints' services, write results as they come, then finalize (output and error files, or Anthropic's
result counts) — or fail the batch when the job gives up on it.

Every status change is a compare-and-set (the API may cancel meanwhile) and each line is answered once,
keyed by its custom_id: a resumed batch skips the lines that have a result.
"""
from __future__ import annotations

import logging
import time

import msgspec

from app.core.errors import APIError
from app.core.ids import new_id
from app.services.batches import messages as anthropic
from app.services.batches.lifecycle import TERMINAL
from app.services.batches.lines import LineServices, parse_lines
from app.services.batches.run_lines import RunLines
from app.services.batches.store import BatchStore

log = logging.getLogger("understudy.batches")

EXPIRED_ERROR = {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}


class BatchJob:
    def __init__(self, store: BatchStore, blobs, files, lines: LineServices, *, concurrency: int) -> None:
        self._store, self._blobs, self._files, self._lines = store, blobs, files, lines
        self.concurrency = concurrency

    async def execute(self, batch_id: str) -> None:
        found = await self._store.get(batch_id)
        if found is None or found[0]["status"] in TERMINAL:
            return
        batch, tenant = found
        lines = None
        if batch["status"] == "validating":
            lines, errors, model = await self._validate(tenant, batch)
            now = int(time.time())
            if errors:
                failed = {**batch, "status": "failed", "failed_at": now, "errors": {"object": "list", "data": errors}}
                if await self._store.save(failed, "validating"):
                    return
            else:
                started = {**batch, "status": "in_progress", "in_progress_at": now, "model": model,
                           "request_counts": {"total": len(lines), "completed": 0, "failed": 0}}
                if await self._store.save(started, "validating"):
                    batch = started
            batch = await self._reload(batch)
            if batch["status"] == "cancelling" and lines is None:
                lines = []
        if batch["status"] in ("in_progress", "cancelling"):
            if lines is None:
                lines = (await self._read_lines(tenant, batch))[0]
            batch = await RunLines(self._store, self._lines, tenant, batch, lines, self.concurrency).run()
        if batch["status"] in ("finalizing", "cancelling"):
            await self._finalize(tenant, batch)

    async def fail(self, batch_id: str, message: str) -> None:
        """The job gave up on the batch: failed, with the reason (the lines answered so far stay recorded)."""
        found = await self._store.get(batch_id)
        if found is None or found[0]["status"] in TERMINAL:
            return
        batch = found[0]
        failed = {**batch, "status": "failed", "failed_at": int(time.time()),
                  "errors": {"object": "list", "data": [{"code": "server_error", "message": message, "param": None, "line": None}]}}
        await self._store.save(failed, batch["status"])

    async def _reload(self, batch: dict) -> dict:
        found = await self._store.get(batch["id"])
        return found[0] if found is not None else batch

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
                self._lines.inference.provider_for(tenant, model)
            except APIError as error:
                if error.status_code != 404:
                    raise
                first = next((line["line"] for line in lines if line["body"].get("model") == model), None)
                errors = [{"code": "model_not_found", "message": f"The model '{model}' does not exist or you do not have access to it.",
                           "param": "body.model", "line": first}]
        return lines, errors, model

    async def _finalize(self, tenant: str, batch: dict) -> None:
        rows = await self._store.results(batch["id"])
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
        if not await self._store.save(done, batch["status"]):
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
        await self._store.add_results(rows)
        return await self._store.results(batch["id"])

    async def _write_file(self, tenant: str, batch: dict, lines: list[dict], kind: str) -> str | None:
        if not lines:
            return None
        data = b"".join(msgspec.json.encode(line) + b"\n" for line in lines)
        made = await self._files.create_from_bytes(tenant, data, filename=f"{batch['id']}_{kind}.jsonl", purpose="batch_output",
                                                   expires_after=batch.get("output_expires_after"))
        return made["id"]


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
