"""Rewards for reinforcement fine-tuning: a job's grader checked at create (like the graders endpoints)
and, at each training step, one training example answered by the job's base model through the router
and graded — the reward the step's metrics event reports."""
from __future__ import annotations

import json

from openai.types.fine_tuning.alpha import grader_validate_params

from app.core.errors import APIError
from app.services.evals.grader_api import checked_body
from app.services.evals.graders import GraderError, Graders, Usage, sample_context

MAX_EXAMPLES = 1000  # examples kept for grading (the steps cycle through them)


class RewardGrader:
    def __init__(self, graders: Graders, inference) -> None:
        self._graders, self._inference = graders, inference

    def check(self, grader, param: str) -> dict:
        """The grader, checked; a 400 naming `param`'s fields when it is not valid."""
        try:
            return checked_body(grader_validate_params.GraderValidateParams, {"grader": grader})["grader"]
        except APIError as error:
            if error.param and error.param.startswith("grader"):
                error.message = error.message.replace(f"'{error.param}'", f"'{param}{error.param[6:]}'")
                error.param = param + error.param[6:]
            raise

    @staticmethod
    def examples(raw: bytes) -> list[dict]:
        found = []
        for line in raw.decode("utf-8", errors="replace").splitlines():
            if line.strip():
                found.append(json.loads(line))  # the file was validated already
                if len(found) >= MAX_EXAMPLES:
                    break
        return found

    async def reward(self, tenant_id: str, grader: dict, model: str, example: dict) -> tuple[float, bool]:
        """(score, errored) for the model's answer to one example; the example is the `item` namespace."""
        messages = [m for m in example.get("messages") or [] if isinstance(m, dict)]
        try:
            answer = await self._inference.call(tenant_id, "chat", {"model": model, "messages": messages})
            text = ((answer.get("choices") or [{}])[0].get("message") or {}).get("content") or ""
            result = await self._graders.grade(tenant_id, grader, sample_context(example, text, answer.get("choices")), Usage())
        except (APIError, GraderError):
            return 0.0, True
        return result["score"], False
