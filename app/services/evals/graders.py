"""Graders: string_check, text_similarity, score_model and label_model (through the inference router),
python (in the code sandbox) and multi (a formula over sub-graders), each answering
`{"name", "type", "score", "passed", "sample"}` for one item and one sample.

Templates name `{{item.x}}` and `{{sample.output_text}}` (also `sample.output_json`, `sample.choices`
and any dotted path); what a path names that is not a string is written as JSON, a missing one as "".
"""
from __future__ import annotations

import ast
import json
import math
import operator
import re
import time
from dataclasses import dataclass, field

from app.services.evals.metrics import cosine, similarity

_TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_][\w.\-]*)\s*\}\}")
SIMILARITY_METRICS = ("cosine", "fuzzy_match", "bleu", "gleu", "meteor", "rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5", "rouge_l")
STRING_OPERATIONS = ("eq", "ne", "like", "ilike")
EMBEDDING_MODEL = "text-embedding-3-large"
PYTHON_TIMEOUT_S = 10.0
MAX_FORMULA_CHARS = 1024


class GraderError(Exception):
    """A grader could not give a score for this item (its model failed, its code raised…)."""


def lookup(path: str, context: dict):
    value = context
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def render(template, context: dict) -> str:
    if not isinstance(template, str):
        return "" if template is None else json.dumps(template)

    def one(match: re.Match) -> str:
        value = lookup(match.group(1), context)
        if value is None:
            return ""
        return value if isinstance(value, str) else json.dumps(value)

    return _TEMPLATE.sub(one, template)


def _content_text(content, context: dict) -> str:
    if isinstance(content, str):
        return render(content, context)
    if isinstance(content, dict):
        return render(content.get("text") or content.get("image_url") or "", context)
    if isinstance(content, list):
        return "\n".join(_content_text(part, context) for part in content)
    return ""


def render_messages(messages: list, context: dict) -> list[dict]:
    return [{"role": m.get("role", "user"), "content": _content_text(m.get("content"), context)}
            for m in messages if isinstance(m, dict) and m.get("type", "message") == "message"]


@dataclass
class Usage:
    """Tokens per model, for a run's `per_model_usage`."""
    by_model: dict[str, dict] = field(default_factory=dict)

    def add(self, model: str, usage: dict | None) -> None:
        usage = usage or {}
        row = self.by_model.setdefault(model, {"model_name": model, "invocation_count": 0, "prompt_tokens": 0, "completion_tokens": 0,
                                               "total_tokens": 0, "cached_tokens": 0})
        row["invocation_count"] += 1
        row["prompt_tokens"] += usage.get("prompt_tokens") or 0
        row["completion_tokens"] += usage.get("completion_tokens") or 0
        row["total_tokens"] += usage.get("total_tokens") or 0
        row["cached_tokens"] += (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0

    def merge(self, rows: list[dict]) -> None:
        for row in rows:
            mine = self.by_model.setdefault(row["model_name"], {**row, **{k: 0 for k in row if k != "model_name"}})
            for key, value in row.items():
                if key != "model_name":
                    mine[key] += value


_SCORE_SCHEMA = {"type": "object", "properties": {
    "steps": {"type": "array", "items": {"type": "object", "properties": {"description": {"type": "string"}, "conclusion": {"type": "string"}},
                                         "required": ["description", "conclusion"], "additionalProperties": False}},
    "result": {"type": "number"}}, "required": ["steps", "result"], "additionalProperties": False}


class Graders:
    def __init__(self, inference, code_runner) -> None:
        self._inference, self._code = inference, code_runner

    async def grade(self, tenant: str, grader: dict, context: dict, usage: Usage) -> dict:
        """One grader's result; a GraderError is the caller's to report as an errored item."""
        kind = grader["type"]
        sample = None
        if kind == "string_check":
            score = _string_check(grader["operation"], render(grader["input"], context), render(grader["reference"], context))
            passed = score == 1.0
        elif kind == "text_similarity":
            hypothesis, reference = render(grader["input"], context), render(grader["reference"], context)
            metric = grader["evaluation_metric"]
            if metric == "cosine":
                score = await self._cosine(tenant, hypothesis, reference, usage)
            else:
                score = similarity(metric, hypothesis, reference)
            passed = score >= grader.get("pass_threshold", 1.0)
        elif kind in ("score_model", "label_model"):
            score, passed, sample = await self._model(tenant, grader, context, usage)
        elif kind == "python":
            score = await self._python(grader, context)
            passed = score >= grader.get("pass_threshold", 1.0)
        elif kind == "multi":
            scores = {name: (await self.grade(tenant, sub, context, usage))["score"] for name, sub in grader["graders"].items()}
            score = evaluate_formula(grader["calculate_output"], scores)
            passed = score >= 1.0
            sample = {"sub_scores": scores}
        else:  # refused when the grader was created
            raise GraderError(f"Unsupported grader type '{kind}'.")
        return {"name": grader["name"], "type": kind, "score": float(score), "passed": bool(passed), "sample": sample}

    async def _cosine(self, tenant: str, a: str, b: str, usage: Usage) -> float:
        answer = await self._call(tenant, "embeddings", {"model": EMBEDDING_MODEL, "input": [a or " ", b or " "]})
        usage.add(EMBEDDING_MODEL, answer.get("usage"))
        first, second = (row["embedding"] for row in sorted(answer["data"], key=lambda row: row["index"]))
        return max(0.0, min(1.0, cosine(first, second)))

    async def _model(self, tenant: str, grader: dict, context: dict, usage: Usage):
        messages = render_messages(grader["input"], context)
        if grader["type"] == "score_model":
            schema = _SCORE_SCHEMA
        else:
            schema = {"type": "object", "properties": {"result": {"type": "string", "enum": list(grader["labels"])}},
                      "required": ["result"], "additionalProperties": False}
        params = {"model": grader["model"], "messages": messages,
                  "response_format": {"type": "json_schema", "json_schema": {"name": "grade", "schema": schema, "strict": True}}}
        for key in ("temperature", "top_p", "seed", "max_completions_tokens", "reasoning_effort"):
            value = (grader.get("sampling_params") or {}).get(key)
            if value is not None:
                params["max_completion_tokens" if key == "max_completions_tokens" else key] = value
        answer = await self._call(tenant, "chat", params)
        usage.add(grader["model"], answer.get("usage"))
        text = ((answer.get("choices") or [{}])[0].get("message") or {}).get("content") or ""
        try:
            result = json.loads(text)["result"]
        except (ValueError, KeyError, TypeError):
            raise GraderError(f"The grader model's answer could not be parsed: {text[:200]!r}") from None
        sample = {"output": [{"role": "assistant", "content": text}], "model": answer.get("model", grader["model"]),
                  "usage": answer.get("usage")}
        if grader["type"] == "label_model":
            passed = result in grader["passing_labels"]
            return (1.0 if passed else 0.0), passed, sample
        if not isinstance(result, (int, float)):
            raise GraderError(f"The grader model's score is not a number: {result!r}")
        low, high = (grader.get("range") or [0, 1])[:2]
        score = min(max(float(result), low), high)
        threshold = grader.get("pass_threshold")
        return score, score >= (threshold if threshold is not None else (low + high) / 2), sample

    async def _call(self, tenant: str, method: str, params: dict) -> dict:
        from app.core.errors import APIError

        try:
            return await self._inference.call(tenant, method, params)
        except APIError as error:
            raise GraderError(error.message) from None

    async def _python(self, grader: dict, context: dict) -> float:
        from app.services.assistants.sandbox import SandboxFile

        driver = grader["source"] + (
            "\n\nimport json as _json\n"
            "_args = _json.load(open('grader_input.json'))\n"
            "_score = grade(_args['sample'], _args['item'])\n"
            "open('grader_score.json', 'w').write(_json.dumps(float(_score)))\n"
        )
        payload = json.dumps({"sample": context.get("sample") or {}, "item": context.get("item") or {}}).encode()
        result = await self._code.run(driver, [SandboxFile("grader_input.json", payload)], timeout_s=PYTHON_TIMEOUT_S)
        if result.error:
            raise GraderError(f"The python grader failed: {result.error}\n{result.logs[-2000:]}")
        found = next((f for f in result.files if f.name == "grader_score.json"), None)
        if found is None:
            raise GraderError("The python grader returned no score.")
        score = float(json.loads(found.data))
        if not math.isfinite(score):
            raise GraderError("The python grader returned a score that is not a finite number.")
        return score


def _string_check(operation: str, value: str, reference: str) -> float:
    if operation == "eq":
        return float(value == reference)
    if operation == "ne":
        return float(value != reference)
    if operation == "like":
        return float(reference in value)
    if operation == "ilike":
        return float(reference.lower() in value.lower())
    raise GraderError(f"Unsupported operation '{operation}'.")


_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv, ast.Pow: operator.pow}
_FUNCTIONS = {"min": min, "max": max, "abs": abs, "floor": math.floor, "ceil": math.ceil, "exp": math.exp, "sqrt": math.sqrt, "log": math.log}


def evaluate_formula(formula: str, scores: dict[str, float]) -> float:
    """A multi grader's `calculate_output`: arithmetic over sub-grader names (no Python evaluated)."""
    if len(formula) > MAX_FORMULA_CHARS:
        raise GraderError(f"calculate_output is longer than {MAX_FORMULA_CHARS} characters.")
    try:
        tree = ast.parse(formula, mode="eval")
    except (SyntaxError, RecursionError, MemoryError):
        raise GraderError(f"Invalid calculate_output formula: {formula!r}") from None

    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return float(node.value)
        if isinstance(node, ast.Name) and node.id in scores:
            return float(scores[node.id])
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 64:
                raise GraderError("Exponent too large in calculate_output.")
            return _BINARY[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = walk(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS and not node.keywords:
            return float(_FUNCTIONS[node.func.id](*(walk(arg) for arg in node.args)))
        raise GraderError(f"Unsupported expression in calculate_output: {ast.dump(node)[:80]}")

    try:
        return walk(tree)
    except RecursionError:
        raise GraderError("calculate_output is nested too deeply.") from None
    except (ZeroDivisionError, ValueError, OverflowError, TypeError) as error:
        raise GraderError(f"calculate_output could not be computed: {error}") from None


def check_formula(formula: str, names: set[str]) -> str | None:
    """Why `formula` is not a valid calculate_output over `names`, or None."""
    try:
        evaluate_formula(formula, {name: 1.0 for name in names})
    except GraderError as error:
        return str(error)
    return None


def sample_context(item: dict, output_text: str | None, choices: list | None = None) -> dict:
    sample = {"output_text": output_text or "", "choices": choices or []}
    try:
        sample["output_json"] = json.loads(output_text) if output_text else None
    except ValueError:
        sample["output_json"] = None
    return {"item": item, "sample": sample}


def timer() -> float:
    return time.perf_counter()
