"""The wire objects a run produces — runs, run steps, run-made messages — and their stream deltas.

Pure functions over dicts, shared by the service (API side) and the executor (job side), so both write
exactly OpenAI's shapes (openai.types.beta.threads.Run, runs.RunStep, Message and their deltas).
"""
from __future__ import annotations

import time

from app.core.ids import new_id

TERMINAL = ("completed", "failed", "cancelled", "expired", "incomplete")
# The run events that end a stream of run events (then `done`).
STREAM_END = {f"thread.run.{status}" for status in (*TERMINAL, "requires_action")}


def now() -> int:
    return int(time.time())


def new_run(*, thread_id: str, assistant: dict, params: dict, expires_in: int) -> dict:
    created = now()
    instructions = params["instructions"] if params.get("instructions") is not None else assistant.get("instructions") or ""
    if params.get("additional_instructions"):
        instructions = f"{instructions}\n\n{params['additional_instructions']}" if instructions else params["additional_instructions"]

    def pick(name: str, default=None):
        value = params.get(name)
        return value if value is not None else assistant.get(name, default) if assistant.get(name) is not None else default

    return {
        "id": new_id("run_"), "object": "thread.run", "created_at": created, "assistant_id": assistant["id"], "thread_id": thread_id,
        "status": "queued", "started_at": None, "expires_at": created + expires_in, "cancelled_at": None, "failed_at": None,
        "completed_at": None, "required_action": None, "last_error": None, "model": params.get("model") or assistant["model"],
        "instructions": instructions, "tools": params["tools"] if params.get("tools") is not None else assistant.get("tools") or [],
        "metadata": params.get("metadata") or {}, "usage": None, "temperature": pick("temperature", 1.0), "top_p": pick("top_p", 1.0),
        "max_prompt_tokens": params.get("max_prompt_tokens"), "max_completion_tokens": params.get("max_completion_tokens"),
        "truncation_strategy": {"type": "auto", "last_messages": None, **(params.get("truncation_strategy") or {})},
        "incomplete_details": None, "response_format": pick("response_format", "auto"),
        "tool_choice": params.get("tool_choice") or "auto", "parallel_tool_calls": params.get("parallel_tool_calls", True) is not False,
        "reasoning_effort": pick("reasoning_effort"),
    }


def new_step(run: dict, step_type: str, details: dict) -> dict:
    return {
        "id": new_id("step_"), "object": "thread.run.step", "created_at": now(), "run_id": run["id"], "assistant_id": run["assistant_id"],
        "thread_id": run["thread_id"], "type": step_type, "status": "in_progress", "cancelled_at": None, "completed_at": None,
        "expired_at": None, "failed_at": None, "last_error": None, "step_details": details, "usage": None, "metadata": {},
    }


def message_creation_details(message_id: str) -> dict:
    return {"type": "message_creation", "message_creation": {"message_id": message_id}}


def new_run_message(run: dict) -> dict:
    """The assistant message a run is writing (in_progress until its text is complete)."""
    return {
        "id": new_id("msg_"), "object": "thread.message", "created_at": now(), "thread_id": run["thread_id"], "role": "assistant",
        "content": [], "assistant_id": run["assistant_id"], "run_id": run["id"], "attachments": [], "metadata": {},
        "status": "in_progress", "completed_at": None, "incomplete_at": None, "incomplete_details": None,
    }


def text_part(value: str, annotations: list | None = None) -> dict:
    return {"type": "text", "text": {"value": value, "annotations": annotations or []}}


def message_delta(message_id: str, text: str, index: int = 0) -> dict:
    return {"id": message_id, "object": "thread.message.delta", "delta": {"content": [{"index": index, "type": "text", "text": {"value": text}}]}}


def refusal_part(refusal: str) -> dict:
    return {"type": "refusal", "refusal": refusal}


def refusal_delta(message_id: str, refusal: str, index: int) -> dict:
    return {"id": message_id, "object": "thread.message.delta", "delta": {"content": [{"index": index, "type": "refusal", "refusal": refusal}]}}


def tool_calls_delta(step_id: str, calls: list[dict]) -> dict:
    return {"id": step_id, "object": "thread.run.step.delta", "delta": {"step_details": {"type": "tool_calls", "tool_calls": calls}}}


def usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def add_usage(total: dict | None, more: dict | None) -> dict | None:
    if more is None:
        return total
    if total is None:
        return dict(more)
    return usage(total["prompt_tokens"] + more["prompt_tokens"], total["completion_tokens"] + more["completion_tokens"])


def server_error(message: str, code: str = "server_error") -> dict:
    return {"code": code, "message": message}
