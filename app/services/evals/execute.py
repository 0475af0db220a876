"""The `execute_eval_run` job: read the run's data-source rows, generate a sample per row through the
inference router when the run names a model (`completions` / `responses`), grade it with every testing
criterion, write one output item per row, then sum the counts.

The run's status in the database is its truth (queued → in_progress → completed, or canceled / failed);
every status change is a compare-and-set, so a cancel wins over the job's next write. An output item is
written once per (run, row): a resumed run skips the rows already graded.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time

from app.core.errors import APIError
from app.core.ids import new_id
from app.core.pagination import Page
from app.services.evals.graders import GraderError, Graders, Usage, lookup, render_messages, sample_context
from app.services.evals.service import RUN_TERMINAL
from app.services.evals.store import EvalStore

log = logging.getLogger("understudy.evals")
_ZERO_USAGE = {"total_tokens": 0, "completion_tokens": 0, "prompt_tokens": 0, "cached_tokens": 0}


class RunFailed(Exception):
    """The run's data source cannot be read: the run fails with this message."""


class EvalRunJob:
    def __init__(self, store: EvalStore, files, chat, inference, graders: Graders, *, concurrency: int, max_items: int) -> None:
        self._store, self._files, self._chat, self._inference, self._graders = store, files, chat, inference, graders
        self._concurrency, self._max_items = concurrency, max_items

    async def execute(self, run_id: str) -> None:
        found = await self._store.get_run(run_id)
        if found is None or found[0]["status"] in RUN_TERMINAL:
            return
        run, tenant = found
        eval_ = await self._store.eval_by_id(run["eval_id"])
        if eval_ is None:
            return
        if run["status"] == "queued":
            started = {**run, "status": "in_progress"}
            if not await self._store.save_run(started, "queued"):
                return  # canceled meanwhile
            run = started
        try:
            rows = await self._rows(tenant, run["data_source"])
        except RunFailed as error:
            await self._fail(run, "invalid_data_source", str(error))
            return
        done = await self._store.done_items(run_id)
        todo = [(index, row) for index, row in enumerate(rows) if index not in done]
        for start in range(0, len(todo), self._concurrency):
            current = await self._store.get_run(run_id)
            if current is None or current[0]["status"] != "in_progress":
                return  # canceled or deleted: stop grading
            chunk = todo[start:start + self._concurrency]
            made = await asyncio.gather(*(self._grade_row(tenant, eval_, run, index, row) for index, row in chunk))
            for item in made:
                await self._store.add_item(tenant, item)
        items = await self._store.all_items(run_id)
        finished = {**run, "status": "completed", **summarize(eval_, items)}
        if not await self._store.save_run(finished, "in_progress"):
            log.info("eval run %s changed status while finishing", run_id)

    async def fail(self, run_id: str, message: str) -> None:
        """The job gave up on the run: failed, with the reason (the items graded so far stay)."""
        found = await self._store.get_run(run_id)
        if found is not None and found[0]["status"] not in RUN_TERMINAL:
            await self._fail(found[0], "server_error", message)

    async def _fail(self, run: dict, code: str, message: str) -> None:
        items = await self._store.all_items(run["id"])
        eval_ = await self._store.eval_by_id(run["eval_id"]) or {"testing_criteria": []}
        failed = {**run, "status": "failed", "error": {"code": code, "message": message}, **summarize(eval_, items)}
        await self._store.save_run(failed, run["status"])

    # the data source's rows: [{"item": {...}, "sample": {...}?}]
    async def _rows(self, tenant: str, data_source: dict) -> list[dict]:
        source = data_source.get("source") or {}
        kind = source.get("type")
        if kind == "file_content":
            return list(source["content"])
        if kind == "file_id":
            try:
                data = await self._files.read_all(tenant, source["id"])
            except APIError as error:
                raise RunFailed(error.message) from None
            rows = []
            for number, line in enumerate(data.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except ValueError:
                    raise RunFailed(f"Line {number} of file {source['id']} is not valid JSON.") from None
                if not isinstance(value, dict):
                    raise RunFailed(f"Line {number} of file {source['id']} is not a JSON object.")
                rows.append(value if isinstance(value.get("item"), dict) else {"item": value})
                if len(rows) > self._max_items:
                    raise RunFailed(f"The file holds more than {self._max_items} items, the most a run may grade.")
            return rows
        if kind == "stored_completions":
            return await self._stored_completions(tenant, source)
        raise RunFailed(f"Data sources of type '{kind}' are not supported.")

    async def _stored_completions(self, tenant: str, source: dict) -> list[dict]:
        limit = min(source.get("limit") or self._max_items, self._max_items)
        after, rows = None, []
        while len(rows) < limit:
            page = await self._chat.list(tenant, Page(100, "desc", after, None), source.get("model"), source.get("metadata") or {})
            for completion in page["data"]:
                created = completion["created"]
                if source.get("created_after") is not None and created < source["created_after"]:
                    continue
                if source.get("created_before") is not None and created > source["created_before"]:
                    continue
                messages = (await self._chat.messages(tenant, completion["id"], Page(100, "asc", None, None)))["data"]
                output = (completion["choices"] or [{}])[0].get("message") or {}
                rows.append({"item": {"input": [{"role": m.get("role"), "content": m.get("content")} for m in messages],
                                      "completion_id": completion["id"]},
                             "sample": {"model": completion["model"], "choices": completion["choices"], "output_text": output.get("content") or ""},
                             "usage": completion.get("usage")})
                if len(rows) >= limit:
                    break
            if not page["has_more"]:
                break
            after = page["last_id"]
        return rows

    # one row
    async def _grade_row(self, tenant: str, eval_: dict, run: dict, index: int, row: dict) -> dict:
        item = row.get("item") or {}
        usage = Usage()
        error = None
        try:
            sample, output_text, choices = await self._sample(tenant, run["data_source"], row, usage)
        except GraderError as failure:
            sample, output_text, choices = _empty_sample(), "", []
            sample["error"] = error = {"code": "sample_generation_error", "message": str(failure)}
        results = []
        if error is None:
            context = sample_context(item, output_text, choices)
            for grader in eval_["testing_criteria"]:
                try:
                    results.append(await self._graders.grade(tenant, grader, context, usage))
                except GraderError as failure:
                    error = {"code": "grader_error", "message": f"{grader['name']}: {failure}"}
                    results.append({"name": grader["name"], "type": grader["type"], "score": 0.0, "passed": False,
                                    "sample": {"error": error}})
        passed = error is None and all(result["passed"] for result in results)
        return {"object": "eval.run.output_item", "id": new_id("outputitem_"), "run_id": run["id"], "eval_id": run["eval_id"],
                "created_at": int(time.time()), "status": "pass" if passed else "fail", "datasource_item_id": index,
                "datasource_item": item, "results": results, "sample": sample, "errored": error is not None,
                "usage": list(usage.by_model.values())}

    async def _sample(self, tenant: str, data_source: dict, row: dict, usage: Usage) -> tuple[dict, str, list]:
        if data_source["type"] == "jsonl" or "model" not in data_source:
            given = row.get("sample") if isinstance(row.get("sample"), dict) else {}
            text = given.get("output_text")
            if text is None:
                text = ((given.get("choices") or [{}])[0].get("message") or {}).get("content") or ""
            sample = _empty_sample()
            sample.update(output=[{"role": "assistant", "content": text}] if given else [], model=given.get("model") or "")
            return sample, text, given.get("choices") or []
        messages = _input_messages(data_source, row)
        params = {"model": data_source["model"], "messages": messages}
        sampling = data_source.get("sampling_params") or {}
        for key in ("temperature", "top_p", "seed"):
            if sampling.get(key) is not None:
                params[key] = sampling[key]
        if sampling.get("max_completion_tokens") is not None or sampling.get("max_completions_tokens") is not None:
            params["max_completion_tokens"] = sampling.get("max_completion_tokens") or sampling.get("max_completions_tokens")
        try:
            answer = await self._inference.call(tenant, "chat", params)
        except APIError as error:
            raise GraderError(error.message) from None
        usage.add(data_source["model"], answer.get("usage"))
        choice = (answer.get("choices") or [{}])[0]
        text = (choice.get("message") or {}).get("content") or ""
        raw = answer.get("usage") or {}
        sample = {"input": messages, "output": [{"role": "assistant", "content": text}], "finish_reason": choice.get("finish_reason") or "stop",
                  "model": answer.get("model") or data_source["model"], "error": None,
                  "usage": {"total_tokens": raw.get("total_tokens") or 0, "completion_tokens": raw.get("completion_tokens") or 0,
                            "prompt_tokens": raw.get("prompt_tokens") or 0,
                            "cached_tokens": (raw.get("prompt_tokens_details") or {}).get("cached_tokens") or 0},
                  "temperature": float(params.get("temperature", 1.0)), "max_completion_tokens": params.get("max_completion_tokens") or 0,
                  "top_p": float(params.get("top_p", 1.0)), "seed": params.get("seed") or 0}
        return sample, text, answer.get("choices") or []


def _input_messages(data_source: dict, row: dict) -> list[dict]:
    spec = data_source.get("input_messages")
    context = {"item": row.get("item") or {}}
    if spec is None:  # stored completions replayed: the completion's own input
        messages = (row.get("item") or {}).get("input") or []
        return [{"role": m.get("role") or "user", "content": m.get("content") if isinstance(m.get("content"), str) else json.dumps(m.get("content"))}
                for m in messages if isinstance(m, dict)]
    if spec["type"] == "item_reference":
        found = lookup(spec["item_reference"], context)
        if isinstance(found, str):
            return [{"role": "user", "content": found}]
        if not isinstance(found, list):
            raise GraderError(f"'{spec['item_reference']}' names no list of messages in this item.")
        return render_messages([{"type": "message", **m} if isinstance(m, dict) else m for m in found], {})
    return render_messages([{"type": "message", **m} if "type" not in m else m for m in spec["template"]], context)


def _empty_sample() -> dict:
    return {"input": [], "output": [], "finish_reason": "", "model": "", "usage": dict(_ZERO_USAGE), "error": None,
            "temperature": 1.0, "max_completion_tokens": 0, "top_p": 1.0, "seed": 0}


def summarize(eval_: dict, items: list[dict]) -> dict:
    """The run's result_counts, per_testing_criteria_results and per_model_usage, from its output items."""
    errored = sum(1 for item in items if item.get("errored"))
    passed = sum(1 for item in items if item["status"] == "pass")
    per = []
    for grader in eval_["testing_criteria"]:
        outcomes = [r["passed"] for item in items for r in item["results"] if r["name"] == grader["name"]]
        per.append({"testing_criteria": grader["name"], "passed": sum(outcomes), "failed": len(outcomes) - sum(outcomes)})
    usage = Usage()
    for item in items:
        usage.merge(item.get("usage") or [])
    return {"result_counts": {"total": len(items), "errored": errored, "failed": len(items) - errored - passed, "passed": passed},
            "per_testing_criteria_results": per, "per_model_usage": list(usage.by_model.values())}
