"""A rule's `reply` as a provider's answer: a chat completion, its stream of chunks, a legacy
completion, embeddings. Everything downstream (Responses items, Anthropic blocks, Gemini parts, run
steps and `requires_action`) is translated from these, as it is from the offline model's answers."""
from __future__ import annotations

import base64
import re
import struct
import time
from typing import Iterator

import msgspec

from app.core.ids import new_id
from app.core.tokens import count_chat_tokens, count_tokens
from app.inference.base import served_tier

_WORDS = re.compile(r"\s*\S+\s*|\s+")
FINGERPRINT = "fp_understudy_script"


def content_of(reply: dict) -> str | None:
    if "json" in reply:
        return msgspec.json.encode(reply["json"]).decode()
    text = reply.get("text")
    if isinstance(text, list):
        return "".join(text)
    return text


def pieces(reply: dict) -> list[str]:
    """The stream's chunks: a list of texts as given, else word-sized pieces."""
    text = reply.get("text")
    if isinstance(text, list):
        return [t for t in text if t]
    content = content_of(reply)
    return _WORDS.findall(content) if content else []


def tool_calls(reply: dict) -> list[dict]:
    calls = []
    for call in reply.get("tool_calls") or ():
        arguments = call.get("arguments", {})
        if not isinstance(arguments, str):
            arguments = msgspec.json.encode(arguments).decode()
        calls.append({"id": call.get("id") or new_id("call_"), "type": "function", "function": {"name": call["name"], "arguments": arguments}})
    return calls


def _legacy(params: dict) -> bool:
    return bool(params.get("functions")) and not params.get("tools")


def _finish(reply: dict, calls: list[dict], params: dict) -> str:
    if reply.get("finish_reason"):
        return reply["finish_reason"]
    if calls:
        return "function_call" if _legacy(params) else "tool_calls"
    return "stop"


def usage(reply: dict, params: dict, completion_text: str) -> dict:
    given = reply.get("usage") or {}
    prompt = given.get("prompt_tokens")
    if prompt is None:
        if "messages" in params:
            prompt = count_chat_tokens(params.get("messages") or (), params.get("tools"))
        else:
            source = params.get("prompt", params.get("input", ""))
            prompt = count_tokens(source if isinstance(source, str) else msgspec.json.encode(source).decode())
    completion = given.get("completion_tokens")
    if completion is None:
        completion = count_tokens(completion_text) if completion_text else 0
    return {
        "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }


def _header(params: dict, obj: str) -> dict:
    return {"id": new_id("chatcmpl-"), "object": obj, "created": int(time.time()), "model": params.get("model"),
            "service_tier": served_tier(params.get("service_tier")), "system_fingerprint": FINGERPRINT}


def _n(params: dict) -> int:
    n = params.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 128 else 1


def chat_completion(reply: dict, params: dict) -> dict:
    content, calls = content_of(reply), tool_calls(reply)
    message: dict = {"role": "assistant", "content": content, "refusal": reply.get("refusal"), "annotations": []}
    if calls and _legacy(params):
        message["function_call"] = calls[0]["function"]
    elif calls:
        message["tool_calls"] = calls
    finish = _finish(reply, calls, params)
    spent = (content or "") + (reply.get("refusal") or "") + "".join(c["function"]["arguments"] for c in calls)
    choices = [{"index": i, "message": message, "logprobs": None, "finish_reason": finish} for i in range(_n(params))]
    return {**_header(params, "chat.completion"), "choices": choices, "usage": usage(reply, params, spent)}


def chat_chunks(reply: dict, params: dict, include_usage: bool) -> Iterator[dict]:
    base = _header(params, "chat.completion.chunk")
    if include_usage:
        base["usage"] = None
    calls = tool_calls(reply)
    legacy = _legacy(params)
    finish = _finish(reply, calls, params)

    def chunk(index: int, delta: dict, finish_reason: str | None = None) -> dict:
        return {**base, "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}

    for index in range(_n(params)):
        yield chunk(index, {"role": "assistant", "content": "" if content_of(reply) is not None else None, "refusal": None})
        for piece in pieces(reply):
            yield chunk(index, {"content": piece})
        if reply.get("refusal"):
            for piece in _WORDS.findall(reply["refusal"]):
                yield chunk(index, {"refusal": piece})
        for position, call in enumerate(calls):
            function = call["function"]
            if legacy:
                yield chunk(index, {"function_call": {"name": function["name"], "arguments": function["arguments"]}})
                break
            yield chunk(index, {"tool_calls": [{"index": position, "id": call["id"], "type": "function",
                                                "function": {"name": function["name"], "arguments": ""}}]})
            yield chunk(index, {"tool_calls": [{"index": position, "function": {"arguments": function["arguments"]}}]})
        yield chunk(index, {}, finish)
    if include_usage:
        spent = (content_of(reply) or "") + (reply.get("refusal") or "") + "".join(c["function"]["arguments"] for c in calls)
        yield {**base, "choices": [], "usage": usage(reply, params, spent)}


def completion(reply: dict, params: dict) -> dict:
    text = content_of(reply) or ""
    choices = [{"index": i, "text": text, "logprobs": None, "finish_reason": reply.get("finish_reason") or "stop"} for i in range(_n(params))]
    return {"id": new_id("cmpl-"), "object": "text_completion", "created": int(time.time()), "model": params.get("model"),
            "system_fingerprint": FINGERPRINT, "choices": choices, "usage": _plain_usage(usage(reply, params, text))}


def completion_chunks(reply: dict, params: dict, include_usage: bool) -> Iterator[dict]:
    base = {"id": new_id("cmpl-"), "object": "text_completion", "created": int(time.time()), "model": params.get("model"),
            "system_fingerprint": FINGERPRINT}
    for index in range(_n(params)):
        for piece in pieces(reply):
            yield {**base, "choices": [{"index": index, "text": piece, "logprobs": None, "finish_reason": None}]}
        yield {**base, "choices": [{"index": index, "text": "", "logprobs": None, "finish_reason": reply.get("finish_reason") or "stop"}]}
    if include_usage:
        yield {**base, "choices": [], "usage": _plain_usage(usage(reply, params, content_of(reply) or ""))}


def _plain_usage(full: dict) -> dict:
    return {k: full[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}


def embeddings(reply: dict, params: dict) -> dict:
    inputs = params.get("input")
    count = len(inputs) if isinstance(inputs, list) and inputs and not all(isinstance(i, int) for i in inputs) else 1
    vectors = reply.get("embeddings") or [reply.get("embedding") or [0.0]] * count
    if len(vectors) < count:  # fewer given than inputs: the last one repeats
        vectors = vectors + [vectors[-1]] * (count - len(vectors))
    as_base64 = params.get("encoding_format") == "base64"
    data = [{"object": "embedding", "index": i, "embedding": _b64(v) if as_base64 else [float(x) for x in v]} for i, v in enumerate(vectors[:count])]
    prompt = (reply.get("usage") or {}).get("prompt_tokens")
    if prompt is None:
        prompt = usage({}, params, "")["prompt_tokens"]
    return {"object": "list", "data": data, "model": params.get("model"), "usage": {"prompt_tokens": prompt, "total_tokens": prompt}}


def _b64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
