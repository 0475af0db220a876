"""OpenAI's Evals API (/v1/evals): evals (a data-source config and testing criteria), their runs, and the
runs' output items.

A run is created `queued` and graded in the background by the `execute_eval_run` job (execute.py); this
side checks what a client sends (the SDK's params types, then what those cannot say), keeps the objects,
and cancels. Every lookup is scoped by tenant.
"""
from __future__ import annotations

import time

from openai.types import eval_create_params, eval_update_params
from openai.types import graders as graders_types
from openai.types.evals import run_create_params

from app.core.errors import APIError, invalid_request, not_found
from app.core.ids import new_id
from app.core.metadata import check_metadata
from app.core.pagination import Page, list_body
from app.core.validation import validate_params
from app.services.evals.graders import check_formula
from app.services.evals.store import EvalStore

RUN_TERMINAL = ("completed", "failed", "canceled")
MAX_CRITERIA = 50  # each is run on every row
MAX_SUB_GRADERS = 20
MAX_PYTHON_SOURCE = 256 * 1024
# What a sample holds, for data-source configs that include it (OpenAI's shape).
SAMPLE_SCHEMA = {
    "type": "object",
    "properties": {
        "model": {"type": "string"}, "choices": {"type": "array", "items": {"type": "object"}},
        "output_text": {"type": "string"}, "output_json": {"type": "object"},
        "output_tools": {"type": "array", "items": {"type": "object"}},
        "output_reasoning_summary": {"type": "string"},
    },
    "required": ["model", "choices"],
}
_ANY_ITEM = {"type": "object", "additionalProperties": True}


def _schema(item_schema: dict, with_sample: bool) -> dict:
    properties = {"item": item_schema, **({"sample": SAMPLE_SCHEMA} if with_sample else {})}
    return {"type": "object", "properties": properties, "required": list(properties)}


def wire_source_config(config: dict) -> dict:
    kind = config["type"]
    if kind == "custom":
        return {"type": "custom", "schema": _schema(config["item_schema"], bool(config.get("include_sample_schema")))}
    return {"type": kind, "metadata": config.get("metadata"), "schema": _schema(_ANY_ITEM, True)}


def check_grader(grader: dict, param: str) -> None:
    """What the params types cannot say about a grader."""
    kind = grader.get("type")
    if kind == "label_model":
        stray = [label for label in grader["passing_labels"] if label not in grader["labels"]]
        if stray:
            raise invalid_request(f"Invalid value: passing label '{stray[0]}' is not one of the labels.", param=f"{param}.passing_labels",
                                  code="invalid_value")
    elif kind == "python":
        if len(grader["source"]) > MAX_PYTHON_SOURCE:
            raise invalid_request(f"A python grader's source may be at most {MAX_PYTHON_SOURCE} characters.", param=f"{param}.source",
                                  code="string_above_max_length")
        try:
            compile(grader["source"], "<grader>", "exec")
        except SyntaxError as error:
            raise invalid_request(f"Invalid python grader source: {error.msg} (line {error.lineno}).", param=f"{param}.source",
                                  code="invalid_value") from None
        if "def grade" not in grader["source"]:
            raise invalid_request("A python grader's source must define grade(sample, item).", param=f"{param}.source", code="invalid_value")
    elif kind == "multi":
        if len(grader["graders"]) > MAX_SUB_GRADERS:
            raise invalid_request(f"A multi grader may combine at most {MAX_SUB_GRADERS} graders.", param=f"{param}.graders",
                                  code="array_above_max_length")
        for name, sub in grader["graders"].items():
            if not isinstance(sub, dict) or not isinstance(sub.get("type"), str) or sub["type"] not in SUB_GRADERS:
                raise invalid_request(f"Invalid value: sub-grader '{name}' must be one of the types {', '.join(SUB_GRADERS)}.",
                                      param=f"{param}.graders.{name}", code="invalid_value")
            try:
                validate_params(SUB_GRADERS[sub["type"]], sub)
            except APIError as error:
                where = f"{param}.graders.{name}"
                error.param = f"{where}.{error.param}" if error.param else where
                error.message = error.message.replace(f"'{error.param[len(where) + 1:]}'", f"'{error.param}'") if error.param else error.message
                raise
            check_grader(sub, f"{param}.graders.{name}")
        why = check_formula(grader["calculate_output"], set(grader["graders"]))
        if why:
            raise invalid_request(why, param=f"{param}.calculate_output", code="invalid_value")
    elif kind == "score_model":
        bounds = grader.get("range")
        if bounds is not None and (len(bounds) != 2 or bounds[0] >= bounds[1]):
            raise invalid_request("Invalid 'range': expected [min, max] with min < max.", param=f"{param}.range", code="invalid_value")


SUB_GRADERS = {"string_check": graders_types.StringCheckGraderParam, "text_similarity": graders_types.TextSimilarityGraderParam,
               "python": graders_types.PythonGraderParam, "score_model": graders_types.ScoreModelGraderParam,
               "label_model": graders_types.LabelModelGraderParam}


def normalize_multi(grader: dict, param: str) -> dict:
    """A multi grader with its sub-graders as {name: grader}: OpenAI's documentation writes them so, the
    spec's types say one grader and its example a list (each then named by its `name`)."""
    graders = grader.get("graders")
    if isinstance(graders, dict) and "type" in graders and isinstance(graders.get("type"), str):
        graders = [graders]
    if isinstance(graders, list):
        named = {}
        for i, sub in enumerate(graders):
            if not isinstance(sub, dict) or not isinstance(sub.get("name"), str):
                raise invalid_request("Each sub-grader needs a 'name'.", param=f"{param}.graders[{i}].name", code="missing_required_parameter")
            named[sub["name"]] = sub
        graders = named
    if not isinstance(graders, dict) or not graders:
        raise invalid_request("'graders' must name at least one sub-grader.", param=f"{param}.graders", code="invalid_value")
    for key in grader:
        if key not in ("type", "name", "graders", "calculate_output"):
            raise invalid_request(f"Unknown parameter: '{param}.{key}'.", param=f"{param}.{key}", code="unknown_parameter")
    for key in ("name", "calculate_output"):
        if not isinstance(grader.get(key), str):
            raise invalid_request(f"Missing required parameter: '{param}.{key}'.", param=f"{param}.{key}", code="missing_required_parameter")
    return {**grader, "graders": graders}


class EvalsService:
    def __init__(self, store: EvalStore, files, inference, queue, *, max_items: int) -> None:
        self._store, self._files, self._inference, self._queue = store, files, inference, queue
        self._max_items = max_items

    # evals
    async def create(self, tenant_id: str, body: dict) -> dict:
        validate_params(eval_create_params.EvalCreateParams, body)
        criteria = body["testing_criteria"]
        if len(criteria) > MAX_CRITERIA:
            raise invalid_request(f"An eval may have at most {MAX_CRITERIA} testing criteria.", param="testing_criteria",
                                  code="array_above_max_length")
        if not criteria:
            raise invalid_request("'testing_criteria' must have at least one grader.", param="testing_criteria", code="empty_array")
        names = set()
        for i, grader in enumerate(criteria):
            check_grader(grader, f"testing_criteria[{i}]")
            if grader["name"] in names:
                raise invalid_request(f"Duplicate testing criterion name '{grader['name']}'.", param=f"testing_criteria[{i}].name",
                                      code="invalid_value")
            names.add(grader["name"])
        eval_ = {"object": "eval", "id": new_id("eval_"), "name": body.get("name") or "", "created_at": int(time.time()),
                 "data_source_config": wire_source_config(body["data_source_config"]), "testing_criteria": criteria,
                 "metadata": check_metadata(body.get("metadata")) or {}}
        await self._store.insert_eval(tenant_id, eval_)
        return eval_

    async def get(self, tenant_id: str, eval_id: str) -> dict:
        eval_ = await self._store.get_eval(tenant_id, eval_id)
        if eval_ is None:
            raise not_found("Eval", eval_id, param="eval_id")
        return eval_

    async def list(self, tenant_id: str, page: Page) -> dict:
        found, has_more = await self._store.page_evals(tenant_id, page)
        return list_body(found, has_more)

    async def update(self, tenant_id: str, eval_id: str, body: dict) -> dict:
        validate_params(eval_update_params.EvalUpdateParams, body)
        eval_ = await self.get(tenant_id, eval_id)
        if "name" in body:
            eval_["name"] = body["name"]
        if "metadata" in body:
            eval_["metadata"] = check_metadata(body["metadata"]) or {}
        await self._store.update_eval(eval_)
        return eval_

    async def delete(self, tenant_id: str, eval_id: str) -> dict:
        await self.get(tenant_id, eval_id)
        await self._store.delete_eval(eval_id)
        return {"object": "eval.deleted", "deleted": True, "eval_id": eval_id}

    # runs
    async def create_run(self, tenant_id: str, eval_id: str, body: dict, base_url: str) -> dict:
        eval_ = await self.get(tenant_id, eval_id)
        validate_params(run_create_params.RunCreateParams, body)
        source = body["data_source"]
        await self._check_source(tenant_id, source.get("source") or {})
        model = source.get("model")
        if model is not None:
            try:
                self._inference.provider_for(tenant_id, model)
            except APIError as error:
                raise invalid_request(error.message, param="data_source.model", code=error.code or "model_not_found") from None
        if eval_["data_source_config"]["type"] in ("logs", "stored_completions") and source["type"] == "jsonl":
            pass  # OpenAI lets a jsonl run be graded against any config
        run_id = new_id("evalrun_")
        run = {
            "object": "eval.run", "id": run_id, "eval_id": eval_id, "status": "queued", "model": model or "",
            "name": body.get("name") or (model or run_id), "created_at": int(time.time()),
            "report_url": f"{base_url}/v1/evals/{eval_id}/runs/{run_id}",
            "result_counts": {"total": 0, "errored": 0, "failed": 0, "passed": 0},
            "per_model_usage": [], "per_testing_criteria_results": [], "data_source": source,
            "metadata": check_metadata(body.get("metadata")) or {}, "error": None,
        }
        await self._store.insert_run(tenant_id, run)
        await self._queue.enqueue("execute_eval_run", key=run_id, run_id=run_id)
        return run

    async def _check_source(self, tenant_id: str, source: dict) -> None:
        kind = source.get("type")
        if kind == "file_content":
            content = source["content"]
            if len(content) > self._max_items:
                raise invalid_request(f"A run's data source may hold at most {self._max_items} items, got {len(content)}.",
                                      param="data_source.source.content", code="array_above_max_length")
            for i, row in enumerate(content):
                if not isinstance(row.get("item"), dict):
                    raise invalid_request("Each row must hold an 'item' object.", param=f"data_source.source.content[{i}].item",
                                          code="invalid_type")
        elif kind == "file_id":
            try:
                await self._files.get_row(tenant_id, source["id"])
            except APIError as error:
                if error.status_code == 404:
                    raise invalid_request(error.message, param="data_source.source.id", code="file_not_found") from None
                raise
        elif kind == "responses":
            raise invalid_request("Runs over stored responses are not supported here; use file_content, file_id or stored_completions.",
                                  param="data_source.source.type", code="invalid_value")
        elif kind == "stored_completions":
            limit = source.get("limit")
            if limit is not None and not 1 <= limit <= self._max_items:
                raise invalid_request(f"Invalid 'limit': must be between 1 and {self._max_items}.", param="data_source.source.limit",
                                      code="invalid_value")

    async def get_run(self, tenant_id: str, eval_id: str, run_id: str) -> dict:
        run = await self._store.get_own_run(tenant_id, eval_id, run_id)
        if run is None:
            raise not_found("EvalRun", run_id, param="run_id")
        return run

    async def list_runs(self, tenant_id: str, eval_id: str, page: Page, status: str | None) -> dict:
        await self.get(tenant_id, eval_id)
        if status is not None and status not in ("queued", "in_progress", "completed", "canceled", "failed"):
            raise invalid_request(f"Invalid value: '{status}'. Supported values are: 'queued', 'in_progress', 'completed', 'canceled' and 'failed'.",
                                  param="status", code="invalid_value")
        found, has_more = await self._store.page_runs(tenant_id, eval_id, page, status)
        return list_body(found, has_more)

    async def cancel_run(self, tenant_id: str, eval_id: str, run_id: str) -> dict:
        for _ in range(20):
            run = await self.get_run(tenant_id, eval_id, run_id)
            if run["status"] in RUN_TERMINAL:
                return run  # a finished run stays as it ended
            canceled = {**run, "status": "canceled"}
            if await self._store.save_run(canceled, run["status"]):
                return canceled
        raise APIError("The run is changing status; try again.", status_code=409)

    async def delete_run(self, tenant_id: str, eval_id: str, run_id: str) -> dict:
        run = await self.get_run(tenant_id, eval_id, run_id)
        if run["status"] not in RUN_TERMINAL:  # the job stops at its next write
            await self.cancel_run(tenant_id, eval_id, run_id)
        await self._store.delete_run(run_id)
        return {"object": "eval.run.deleted", "deleted": True, "run_id": run_id}

    # output items
    async def list_items(self, tenant_id: str, eval_id: str, run_id: str, page: Page, status: str | None) -> dict:
        await self.get_run(tenant_id, eval_id, run_id)
        if status is not None and status not in ("pass", "fail"):
            raise invalid_request(f"Invalid value: '{status}'. Supported values are: 'pass' and 'fail'.", param="status", code="invalid_value")
        found, has_more = await self._store.page_items(tenant_id, run_id, page, status)
        return list_body([wire_item(item) for item in found], has_more)

    async def get_item(self, tenant_id: str, eval_id: str, run_id: str, item_id: str) -> dict:
        await self.get_run(tenant_id, eval_id, run_id)
        item = await self._store.get_item(tenant_id, run_id, item_id)
        if item is None:
            raise not_found("EvalRunOutputItem", item_id, param="output_item_id")
        return wire_item(item)


_ITEM_INTERNAL = ("errored", "usage")  # kept for the run's counts and per-model usage


def wire_item(item: dict) -> dict:
    return {k: v for k, v in item.items() if k not in _ITEM_INTERNAL}
