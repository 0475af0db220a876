"""A chat completion, planned once and rendered either whole or as chunks.

`plan()` decides everything — text or tool calls per choice, the token cut, logprobs, usage — from the
request's seed; `completion()` and `chunks()` only render that plan, which is why a stream reassembles
to exactly the non-streamed answer.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterator

from app.core.errors import invalid_request
from app.core.tokens import count_chat_tokens, count_tokens
from app.inference.base import served_tier
from app.inference.providers.offline import logprobs as lp
from app.inference.providers.offline import prompt_schema
from app.inference.providers.offline import output, seeding, style, text, tools
from app.inference.providers.offline.schema import value_for_schema
from app.inference.providers.offline.schema_limits import SchemaError, check_structure, schema_api_error

FINGERPRINT = "fp_offline"
CALL_OVERHEAD = 3  # tokens a tool call costs beyond its name and arguments
# What one request may make the offline model produce, all choices together: each schema-valid value is
# bounded (schema_limits.py), and `n` multiplies it; logprob entries cost a few hundred bytes each.
MAX_ANSWER_CHARS = 4 << 20
MAX_LOGPROB_ENTRIES = 500_000


@dataclass
class Call:
    id: str
    name: str
    arguments: str
    pieces: list[str]


@dataclass
class Choice:
    index: int
    content: output.Emitted | None
    calls: list[Call]
    legacy: bool
    finish_reason: str
    completion_tokens: int
    logprobs: list[list[dict]] | None = None  # one list of entries per content piece


@dataclass
class Plan:
    choices: list[Choice]
    usage: dict
    logprobs: bool
    service_tier: str
    extra: dict = field(default_factory=dict)


def _messages(params: dict) -> list[dict]:
    messages = params.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid_request("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.", param="messages", code="empty_array")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise invalid_request(f"Missing required parameter: 'messages[{index}].role'.", param=f"messages[{index}].role", code="missing_required_parameter")
    return messages


def int_param(params: dict, name: str, default: int, low: int, high: int) -> int:
    value = params.get(name)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise invalid_request(f"Invalid '{name}': expected an integer between {low} and {high}, but got {value!r} instead.", param=name)
    return value


def _response_text(params: dict, messages: list[dict], r) -> str:
    response_format = params.get("response_format") or {}
    kind = response_format.get("type", "text") if isinstance(response_format, dict) else "text"
    if kind == "json_object":
        return _instance_of_prompt_schema(messages, r, asked=True) or json.dumps(text.json_reply(messages, r), ensure_ascii=False)
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        user = text.last_user_message(messages)
        hints = text.words(text.content_text(user.get("content")) if user else "")
        try:
            if schema is not None:
                check_structure(schema)
            return json.dumps(value_for_schema(schema if isinstance(schema, dict) else {}, r, words=hints), ensure_ascii=False)
        except SchemaError as error:
            name = spec.get("name") if isinstance(spec, dict) else None
            raise schema_api_error(error, "response_format.json_schema.schema", f"response_format '{name}'", code="invalid_json_schema") from None
    if kind != "text":
        raise invalid_request(f"Invalid value for 'response_format.type': '{kind}'. Supported values are: 'text', 'json_object' and 'json_schema'.", param="response_format.type")
    if params.get(style.STYLE_KEY):
        user = text.last_user_message(messages)
        reply = style.closest_reply(params[style.STYLE_KEY], text.content_text(user.get("content")) if user else "")
        if reply:
            return reply
    return _instance_of_prompt_schema(messages, r, asked=False) or text.reply_text(messages, r)


def _instance_of_prompt_schema(messages: list[dict], r, *, asked: bool) -> str | None:
    """JSON following the schema the prompt spells out (prompt_schema.py), or None: no schema, or one
    beyond the offline model's caps (it is only text: then the usual answer)."""
    schema = prompt_schema.schema_in_prompt(messages, asked=asked)
    if schema is None:
        return None
    user = text.last_user_message(messages)
    hints = text.words(text.content_text(user.get("content")) if user else "")
    try:
        check_structure(schema)
        return json.dumps(value_for_schema(schema, r, words=hints), ensure_ascii=False)
    except SchemaError:
        return None


def _calls(decision: tools.ToolDecision, messages: list[dict], seed: int, index: int, budget: int | None,
           produced: int, n: int) -> tuple[list[Call], int, bool]:
    calls, used, cut = [], 0, False
    for position, function in enumerate(decision.functions):
        arguments = tools.arguments(function, seeding.rng(seed, "arguments", index, position), messages)
        produced += len(arguments)
        _check_answer_size(produced, n)
        cost = CALL_OVERHEAD + count_tokens(function.name)
        if budget is not None:
            arguments, arg_tokens, cut = output.truncate_to_tokens(arguments, max(budget - used - cost, 0))
        else:
            arg_tokens = count_tokens(arguments)
        used += cost + arg_tokens
        r = seeding.rng(seed, "argument-pieces", index, position)
        pieces, at = [], 0
        scale = max(1, len(arguments) // 16384)  # long arguments stream in longer pieces (a few thousand at most)
        while at < len(arguments):
            step = r.randint(3, 8) * scale
            pieces.append(arguments[at : at + step])
            at += step
        calls.append(Call(seeding.stable_id("call_", seed, index, position), function.name, arguments, pieces))
        if cut:
            break
    if budget is not None:
        used = min(used, budget)
    return calls, used, cut


def _check_answer_size(produced: int, n: int) -> None:
    if produced > MAX_ANSWER_CHARS:
        raise invalid_request(
            f"The answer would be longer than the offline model's limit of {MAX_ANSWER_CHARS} characters for all choices together: "
            "ask for fewer choices ('n') or a schema with smaller values.", param="n" if n > 1 else None)


def plan(params: dict) -> Plan:
    messages = _messages(params)
    n = int_param(params, "n", 1, 1, 128)
    want_logprobs = bool(params.get("logprobs"))
    top = int_param(params, "top_logprobs", 0, 0, 20) if want_logprobs else 0
    budget = output.token_budget(params, "max_completion_tokens", "max_tokens")
    stops = output.stop_sequences(params)
    decision = tools.decide(params, messages)
    seed = seeding.request_seed(params, "chat")
    choices = []
    produced = logprob_entries = 0
    for index in range(n):
        if decision.functions:
            calls, used, cut = _calls(decision, messages, seed, index, budget, produced, n)
            reason = "length" if cut else ("function_call" if decision.legacy else "tool_calls")
            choices.append(Choice(index, None, calls, decision.legacy, reason, used))
            produced += sum(len(call.arguments) for call in calls)
            continue
        reply = _response_text(params, messages, seeding.rng(seed, "choice", index))
        produced += len(reply)
        _check_answer_size(produced, n)
        emitted = output.emit(reply, budget=budget, stops=stops)
        entries = None
        if want_logprobs:
            logprob_entries += emitted.token_count * (1 + top)
            if logprob_entries > MAX_LOGPROB_ENTRIES:
                raise invalid_request(
                    f"The offline model returns at most {MAX_LOGPROB_ENTRIES} log probabilities (tokens × (1 + top_logprobs), all choices "
                    "together) per request: lower 'top_logprobs', 'n' or 'max_completion_tokens'.", param="top_logprobs" if top else "logprobs")
            entries, start = [], 0
            for tokens in emitted.piece_tokens:
                entries.append(lp.chat_entries(tokens, seed, index, start, top))
                start += len(tokens)
        choices.append(Choice(index, emitted, [], False, emitted.finish_reason, emitted.token_count, entries))
    tool_defs = params.get("tools") or [{"type": "function", "function": f} for f in params.get("functions") or ()]
    prompt_tokens = count_chat_tokens(messages, tool_defs)
    return Plan(choices, output.usage(prompt_tokens, sum(c.completion_tokens for c in choices)), want_logprobs, served_tier(params.get("service_tier")))


def _message(choice: Choice) -> dict:
    message: dict = {"role": "assistant", "content": choice.content.text if choice.content else None, "refusal": None, "annotations": []}
    if choice.calls and choice.legacy:
        message["function_call"] = {"name": choice.calls[0].name, "arguments": choice.calls[0].arguments}
    elif choice.calls:
        message["tool_calls"] = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in choice.calls]
    return message


def _header(meta: dict, plan_: Plan, obj: str) -> dict:
    return {"id": meta["id"], "object": obj, "created": meta["created"], "model": meta["model"], "service_tier": plan_.service_tier, "system_fingerprint": FINGERPRINT}


def completion(plan_: Plan, meta: dict) -> dict:
    choices = []
    for choice in plan_.choices:
        logprobs = None
        if plan_.logprobs and choice.logprobs is not None:
            logprobs = {"content": [entry for piece in choice.logprobs for entry in piece], "refusal": None}
        choices.append({"index": choice.index, "message": _message(choice), "logprobs": logprobs, "finish_reason": choice.finish_reason})
    return {**_header(meta, plan_, "chat.completion"), "choices": choices, "usage": plan_.usage}


def chunks(plan_: Plan, meta: dict, include_usage: bool) -> Iterator[dict]:
    base = _header(meta, plan_, "chat.completion.chunk")
    if include_usage:
        base["usage"] = None

    def chunk(index: int, delta: dict, finish: str | None = None, logprobs: dict | None = None) -> dict:
        return {**base, "choices": [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]}

    for choice in plan_.choices:
        text_choice = choice.content is not None
        first_logprobs = {"content": [], "refusal": None} if plan_.logprobs and text_choice else None
        yield chunk(choice.index, {"role": "assistant", "content": "" if text_choice else None, "refusal": None}, logprobs=first_logprobs)
        if text_choice:
            for position, piece in enumerate(choice.content.pieces):
                logprobs = {"content": choice.logprobs[position], "refusal": None} if choice.logprobs is not None else None
                yield chunk(choice.index, {"content": piece}, logprobs=logprobs)
        for position, call in enumerate(choice.calls):
            if choice.legacy:
                yield chunk(choice.index, {"function_call": {"name": call.name, "arguments": ""}})
                for piece in call.pieces:
                    yield chunk(choice.index, {"function_call": {"arguments": piece}})
                continue
            head = {"index": position, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
            yield chunk(choice.index, {"tool_calls": [head]})
            for piece in call.pieces:
                yield chunk(choice.index, {"tool_calls": [{"index": position, "function": {"arguments": piece}}]})
        yield chunk(choice.index, {}, choice.finish_reason)
    if include_usage:
        yield {**base, "choices": [], "usage": plan_.usage}
