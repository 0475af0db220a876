"""A run's model request: instructions, the thread's messages (truncated), the run's own steps so far,
and its tools as chat-completions functions.

Why chat completions: every provider speaks it (the router's pivot), so a run works against the offline
model, any OpenAI-compatible upstream, Anthropic or Gemini alike. The built-in tools are offered to the
model as functions named `file_search` and `code_interpreter`; the executor runs them itself.
"""
from __future__ import annotations

import base64
import json

from app.core.tokens import count_chat_tokens as _tokens
from app.services.inference import streamed_chat_request

FILE_SEARCH = {
    "type": "function",
    "function": {
        "name": "file_search",
        "description": "Search the files attached to this assistant and thread; returns the most relevant passages. "
                       "Cite a passage with its marker, e.g. 【0:1†source】.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string", "description": "What to look for."}}, "required": ["query"]},
    },
}
CODE_INTERPRETER = {
    "type": "function",
    "function": {
        "name": "code_interpreter",
        "description": "Run Python code in a sandbox (no network). Files attached to the thread are in the working directory; "
                       "files the code writes are returned. Print what you want to see.",
        "parameters": {"type": "object", "properties": {"code": {"type": "string", "description": "Python source."}}, "required": ["code"]},
    },
}
BUILTIN = {"file_search": FILE_SEARCH, "code_interpreter": CODE_INTERPRETER}


def model_tools(tools: list[dict]) -> list[dict]:
    out = []
    for tool in tools:
        if tool["type"] == "function":
            function = {k: v for k, v in tool["function"].items() if v is not None}
            out.append({"type": "function", "function": function})
        elif tool["type"] in BUILTIN:
            out.append(BUILTIN[tool["type"]])
    return out


def model_tool_choice(choice, after_tools: bool = False) -> str | dict | None:
    """The run's tool_choice for one model call. A forced choice (`required`, a named tool) binds the
    run's first call only: once tool outputs are in, the run goes on as `auto`, as OpenAI's does —
    forcing every call would ask for the same tool for ever."""
    if after_tools and choice is not None and choice != "none":
        return "auto"
    if choice is None or isinstance(choice, str):
        return choice
    if choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice["function"]["name"]}}
    return {"type": "function", "function": {"name": choice["type"]}}  # file_search / code_interpreter


async def _content(parts: list[dict], image_bytes) -> str | list[dict]:
    """A stored message's content as chat content: text alone stays a string; images become parts."""
    if all(part["type"] == "text" for part in parts):
        return "\n".join(part["text"]["value"] for part in parts)
    out = []
    for part in parts:
        if part["type"] == "text":
            out.append({"type": "text", "text": part["text"]["value"]})
        elif part["type"] == "image_url":
            out.append({"type": "image_url", "image_url": {k: v for k, v in part["image_url"].items() if v is not None}})
        elif part["type"] == "image_file":
            found = await image_bytes(part["image_file"]["file_id"])
            if found is not None:
                mime, data = found
                url = f"data:{mime};base64,{base64.b64encode(data).decode()}"
                out.append({"type": "image_url", "image_url": {"url": url, "detail": part["image_file"].get("detail") or "auto"}})
    return out


def _step_messages(steps: list[dict], run_messages: dict[str, dict]) -> list[dict]:
    """The run's completed work so far, as the assistant/tool turns the model produced and received."""
    out = []
    for step in steps:
        details = step["step_details"]
        if step["type"] == "message_creation":
            message = run_messages.get(details["message_creation"]["message_id"])
            if message is not None:
                out.append({"role": "assistant", "content": "\n".join(p["text"]["value"] for p in message["content"] if p["type"] == "text")})
            continue
        calls = details["tool_calls"]
        out.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": call["id"], "type": "function", "function": {"name": _call_name(call), "arguments": _call_arguments(call)}} for call in calls
        ]})
        for call in calls:
            out.append({"role": "tool", "tool_call_id": call["id"], "content": _call_output(call)})
    return out


def _call_name(call: dict) -> str:
    return call["function"]["name"] if call["type"] == "function" else call["type"]


def _call_arguments(call: dict) -> str:
    if call["type"] == "function":
        return call["function"]["arguments"]
    if call["type"] == "code_interpreter":
        return json.dumps({"code": call["code_interpreter"]["input"]})
    return json.dumps({"query": call["file_search"].get("query", "")})


def _call_output(call: dict) -> str:
    if call["type"] == "function":
        return call["function"]["output"] or ""
    if call["type"] == "code_interpreter":
        outputs = call["code_interpreter"]["outputs"]
        return "\n".join(o["logs"] if o["type"] == "logs" else f"[image file {o['image']['file_id']}]" for o in outputs) or "(no output)"
    return call["file_search"].get("text") or "No results."


async def build_request(run: dict, thread_messages: list[dict], steps: list[dict], image_bytes) -> tuple[dict, bool]:
    """(chat-completions params, fits): messages are dropped oldest first to
    honour `truncation_strategy` and `max_prompt_tokens`; `fits` is False when even the newest cannot."""
    run_messages = {m["id"]: m for m in thread_messages if m.get("run_id") == run["id"]}
    history = [m for m in thread_messages if m.get("run_id") != run["id"]]
    strategy = run.get("truncation_strategy") or {"type": "auto"}
    if strategy.get("type") == "last_messages" and strategy.get("last_messages"):
        history = history[-strategy["last_messages"]:]
    turns = [{"role": m["role"], "content": await _content(m["content"], image_bytes)} for m in history]
    system = [{"role": "system", "content": run["instructions"]}] if run.get("instructions") else []
    tail = _step_messages(steps, run_messages)
    budget = run.get("max_prompt_tokens")
    fits = True
    if budget:
        costs = [_tokens([turn]) for turn in turns]  # each counted once (priming included: errs on the safe side)
        total = _tokens(system + tail) + sum(costs)
        while turns and total > budget:
            total -= costs.pop(0)
            turns.pop(0)
        fits = bool(turns) and total <= budget
    messages = system + turns + tail
    params = streamed_chat_request(run["model"], messages, model_tools(run.get("tools") or []), model_tool_choice(run.get("tool_choice"), after_tools=any(step["type"] == "tool_calls" for step in steps)), run)
    if isinstance(run.get("response_format"), dict) and run["response_format"].get("type") != "text":
        params["response_format"] = run["response_format"]
    if run.get("reasoning_effort"):
        params["reasoning_effort"] = run["reasoning_effort"]
    return params, fits
