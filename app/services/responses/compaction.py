"""`POST /v1/responses/compact`: a long conversation shrunk to its user messages and one `compaction` item
that carries a summary of the rest, which the client sends back as input in place of the history (Codex
does this when its context fills up).

The item's `encrypted_content` is opaque to clients, as OpenAI's is; here it is the summary sealed in a
versioned envelope that this server opens again when the item comes back as input (a system message
for the model). The offline model writes a deterministic summary (each turn's opening words); any other
model is asked for one through chat completions, so compaction works against every provider.
"""
from __future__ import annotations

import base64
import binascii
import json
import time

from app.core.errors import invalid_request
from app.core.ids import new_id
from app.core.tokens import count_chat_tokens, count_tokens
from app.services.responses.prompt import usage

ENVELOPE = "understudy.compaction.v1:"
SUMMARY_HEADING = "Summary of the earlier conversation (compacted):"
TURN_CHARS = 240  # of each turn, in the offline summary
MAX_TURNS = 64  # the latest ones, in the offline summary
SUMMARY_PROMPT = ("Summarise the conversation so far for your own later use: the user's goals, what has been decided and done, "
                  "facts and names that matter, and what is still open. Write it as plain prose; it replaces the history.")


def seal(summary: str) -> str:
    payload = json.dumps({"summary": summary}, ensure_ascii=False).encode()
    return ENVELOPE + base64.urlsafe_b64encode(payload).decode()


def unseal(content) -> str | None:
    """The summary a compaction item carries, or None when it is not one this server sealed."""
    if not isinstance(content, str) or not content.startswith(ENVELOPE):
        return None
    try:
        summary = json.loads(base64.urlsafe_b64decode(content[len(ENVELOPE):].encode()))["summary"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        return None
    return summary if isinstance(summary, str) else None


def check_item(item: dict, index: int) -> None:
    """A compaction item given as input must be one this server produced: OpenAI's words for content it
    cannot open."""
    if unseal(item.get("encrypted_content")) is None:
        raise invalid_request(f"The encrypted content for item {item.get('id') or f'input[{index}]'} could not be verified.",
                              param=f"input[{index}].encrypted_content", code="invalid_encrypted_content")


def as_message(item: dict) -> dict | None:
    summary = unseal(item.get("encrypted_content"))
    return None if summary is None else {"role": "system", "content": f"{SUMMARY_HEADING}\n{summary}"}


def offline_summary(messages: list[dict]) -> str:
    """Each turn's role and opening words, latest MAX_TURNS: deterministic, and short whatever the history."""
    lines = []
    for message in messages[-MAX_TURNS:]:
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(p.get("text") or "" for p in content if isinstance(p, dict) and p.get("type") == "text")
        text = " ".join((content or "").split())
        if message.get("tool_calls"):
            text = "called " + ", ".join(c.get("function", c.get("custom", {})).get("name", "?") for c in message["tool_calls"])
        if not text:
            continue
        if text.startswith(SUMMARY_HEADING):  # an earlier compaction: its summary, folded in
            text = text[len(SUMMARY_HEADING):].strip()
        lines.append(f"- {message['role']}: {text[:TURN_CHARS]}{'…' if len(text) > TURN_CHARS else ''}")
    return "\n".join(lines) or "- (nothing yet)"


async def summarise(inference, tenant_id: str, model: str, messages: list[dict]) -> tuple[str, int, int]:
    """(summary, input tokens, output tokens)."""
    if inference.provider_for(tenant_id, model).info.kind == "offline":
        summary = offline_summary(messages)
        return summary, count_chat_tokens(messages), count_tokens(summary)
    result = await inference.call(tenant_id, "chat", {"model": model, "messages": messages + [{"role": "user", "content": SUMMARY_PROMPT}]}, endpoint="responses")
    choice = (result.get("choices") or [{}])[0]
    summary = (choice.get("message") or {}).get("content") or ""
    usage = result.get("usage") or {}
    return summary, usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or count_tokens(summary)


def compacted(user_items: list[dict], summary: str, input_tokens: int, output_tokens: int, service_tier: str) -> dict:
    """The `response.compaction` object: every user message, then the compaction item."""
    kept = [{"id": item.get("id") or new_id("msg_"), "type": "message", "role": "user", "status": "completed", "content": item.get("content") or []}
            for item in user_items]
    item = {"id": new_id("cmp_"), "type": "compaction", "encrypted_content": seal(summary)}
    return {
        "id": new_id("resp_"), "object": "response.compaction", "created_at": int(time.time()), "output": kept + [item],
        "usage": usage(input_tokens, output_tokens),
        "service_tier": service_tier,
    }
