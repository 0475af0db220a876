"""/v1/fine_tuning/alpha/graders/run and /validate: one grader, checked, or run over one model sample."""
from __future__ import annotations

import time

from openai.types.fine_tuning.alpha import grader_run_params, grader_validate_params

from app.core.validation import validate_params
from app.services.evals.graders import GraderError, Graders, Usage, sample_context
from app.services.evals.service import check_grader, normalize_multi

_NO_ERRORS = {
    "formula_parse_error": False, "sample_parse_error": False, "truncated_observation_error": False, "unresponsive_reward_error": False,
    "invalid_variable_error": False, "other_error": False, "python_grader_server_error": False, "python_grader_server_error_type": None,
    "python_grader_runtime_error": False, "python_grader_runtime_error_details": None, "model_grader_server_error": False,
    "model_grader_refusal_error": False, "model_grader_parse_error": False, "model_grader_server_error_details": None,
}


class GraderEndpoints:
    def __init__(self, graders: Graders) -> None:
        self._graders = graders

    def validate(self, body: dict) -> dict:
        return {"grader": checked_body(grader_validate_params.GraderValidateParams, body)["grader"]}

    async def run(self, tenant_id: str, body: dict) -> dict:
        body = checked_body(grader_run_params.GraderRunParams, body)
        grader = body["grader"]
        item = body.get("item") if isinstance(body.get("item"), dict) else {}
        usage = Usage()
        errors = dict(_NO_ERRORS)
        started = time.perf_counter()
        sub_rewards: dict = {}
        try:
            result = await self._graders.grade(tenant_id, grader, sample_context(item, body["model_sample"]), usage)
            reward = result["score"]
            if grader["type"] == "multi":
                sub_rewards = dict((result["sample"] or {}).get("sub_scores") or {})
        except GraderError as error:
            reward = 0.0
            _flag(errors, grader["type"], str(error))
        models = list(usage.by_model.values())
        token_usage = sum(row["total_tokens"] for row in models) if models else None
        return {
            "reward": reward,
            "metadata": {"name": grader["name"], "type": grader["type"], "errors": errors, "execution_time": time.perf_counter() - started,
                         "scores": {grader["name"]: reward}, "token_usage": token_usage,
                         "sampled_model_name": grader.get("model") if grader["type"] in ("score_model", "label_model") else None},
            "sub_rewards": sub_rewards,
            "model_grader_token_usage_per_model": {row["model_name"]: {k: v for k, v in row.items() if k != "model_name"} for row in models},
        }


def checked_body(params_type, body: dict) -> dict:
    """The body checked by the SDK's params type, a multi grader's sub-graders one by one (see normalize_multi)."""
    grader = body.get("grader")
    if isinstance(grader, dict) and grader.get("type") == "multi":
        grader = normalize_multi(grader, "grader")
        check_grader(grader, "grader")  # each sub-grader, named by its key
        first = next(iter(grader["graders"].values()))
        validate_params(params_type, {**body, "grader": {**grader, "graders": first}})  # the rest of the body
        return {**body, "grader": grader}
    validate_params(params_type, body)
    check_grader(body["grader"], "grader")
    return body


def _flag(errors: dict, kind: str, message: str) -> None:
    if kind == "python":
        errors.update(python_grader_runtime_error=True, python_grader_runtime_error_details=message[:2000])
    elif kind in ("score_model", "label_model"):
        if "parse" in message:
            errors["model_grader_parse_error"] = True
        else:
            errors.update(model_grader_server_error=True, model_grader_server_error_details=message[:2000])
    elif kind == "multi" and "calculate_output" in message:
        errors["formula_parse_error"] = True
    else:
        errors["other_error"] = True
