"""The usage of a response relayed byte for byte from an upstream, read from its bytes once it has been
sent: a JSON body's `usage`, or a stream's last event that carries one (OpenAI chat and legacy
completion chunks, the Responses API's `response.completed`, Anthropic's `message_delta`, whose input
tokens are in `message_start` at the stream's head). Returned in the chat shape the usage recorder
sums; None when the upstream reported none (a stream whose client did not ask for usage)."""
from __future__ import annotations

import json


def usage_of_relayed(head: bytes, tail: bytes, *, sse: bool) -> dict | None:
    if not sse:
        try:
            return _chat_usage(json.loads(head))
        except ValueError:
            return None
    usage = None
    for line in reversed(tail.split(b"\n")):
        if line.startswith(b"data:") and b'"usage"' in line:
            try:
                usage = _chat_usage(json.loads(line[5:]))
            except ValueError:  # the first line of the tail may be cut
                continue
            if usage is not None:
                break
    if usage is not None and not usage["prompt_tokens"] and b"message_start" in head:
        for line in head.split(b"\n"):
            if line.startswith(b"data:") and b"message_start" in line:
                try:
                    started = _chat_usage(json.loads(line[5:]))
                except ValueError:
                    break
                if started is not None:
                    usage["prompt_tokens"], usage["prompt_tokens_details"] = started["prompt_tokens"], started["prompt_tokens_details"]
                break
    return usage


def _chat_usage(body) -> dict | None:
    if not isinstance(body, dict):
        return None
    if body.get("type") == "message_start":
        body = body.get("message") or {}
    elif isinstance(body.get("response"), dict):  # a Responses API event
        body = body["response"]
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return None
    if "prompt_tokens" in usage:  # OpenAI chat and legacy completions
        return usage
    # Responses (input/output tokens) and Anthropic (input tokens exclude what the cache served or stored)
    cached = (usage.get("input_tokens_details") or {}).get("cached_tokens") or usage.get("cache_read_input_tokens") or 0
    prompt = (usage.get("input_tokens") or 0) + (usage.get("cache_read_input_tokens") or 0) + (usage.get("cache_creation_input_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": usage.get("output_tokens") or 0, "prompt_tokens_details": {"cached_tokens": cached}}
