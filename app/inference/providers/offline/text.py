"""What the offline model says: short, readable replies that refer to the input.

Tests (ours and users') need to assert on replies, so a reply quotes the start of the last user message
and names its key words; after tool results it repeats what the tools returned. The wording varies with
the seed (opening, body and closing phrases), so a `seed` parameter visibly changes the answer.
"""
from __future__ import annotations

import random
import re
from typing import Any, Iterable

STOPWORDS = frozenset(
    """a about above after again all also am an and any are as at be because been before being below between both but by
    can could did do does doing down during each few for from further had has have having he her here hers him his how i if
    in into is it its itself just me more most my no nor not now of off on once only or other our ours out over own please
    same she should so some such than that the their theirs them then there these they this those through to too under
    until up very was we were what when where which while who whom why will with would you your yours tell give show
    let lets make get use using describe explain summarise summarize write list provide say like want need know think""".split()
)
_WORD = re.compile(r"[^\W_](?:[\w'’-]*[^\W_])?")
_QUOTE_WORDS = 12

_OPENINGS = ('You wrote: "{quote}".', 'You asked: "{quote}".', 'Your message: "{quote}".')
_BODIES = (" The key points are {keys}.", " This touches on {keys}.", " Here is a short answer covering {keys}.")
_CLOSINGS = (
    " This is the offline model, so the answer stays brief.",
    " Let me know if you want more detail.",
    " I hope that helps.",
    " Happy to expand on any part of it.",
    " That is the gist of it.",
    " Ask a follow-up question any time.",
    " In short, it depends on the details you care about most.",
    " Feel free to share more context.",
)
_GREETINGS = (
    "Hello! I am the offline model. How can I help you today?",
    "Hi there! What would you like to talk about?",
    "Hello! Send me a question and I will answer briefly.",
)


# Context that clients (Claude Code) inject into the user's turn: not what the user asked.
_INJECTED = re.compile(r"<system-reminder>.*?</system-reminder>", re.DOTALL)


def content_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a content-part list, without
    injected `<system-reminder>` context."""
    if content is None:
        return ""
    if isinstance(content, str):
        return _INJECTED.sub("", content).strip() if "<system-reminder>" in content else content
    texts = []
    for part in content if isinstance(content, list) else ():
        if isinstance(part, dict) and part.get("type") in ("text", "input_text", "output_text"):
            text = str(part.get("text") or "")
            texts.append(_INJECTED.sub("", text).strip() if "<system-reminder>" in text else text)
        elif isinstance(part, str):
            texts.append(part)
    return "\n".join(t for t in texts if t)


def image_count(content: Any) -> int:
    if not isinstance(content, list):
        return 0
    return sum(1 for part in content if isinstance(part, dict) and part.get("type") in ("image_url", "input_image"))


def last_user_message(messages: Iterable[dict]) -> dict | None:
    found = None
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "user":
            found = message
    return found


def keywords(text: str, limit: int = 3) -> list[str]:
    """The first distinct non-stopwords of `text`, as written (case kept)."""
    seen: set[str] = set()
    out: list[str] = []
    for match in _WORD.finditer(text):
        word = match.group(0)
        lowered = word.lower()
        if lowered in STOPWORDS or lowered in seen or (len(word) < 3 and not word.isdigit()):
            continue
        seen.add(lowered)
        out.append(word)
        if len(out) == limit:
            break
    return out


def words(text: str) -> list[str]:
    """Every word of `text`, for strings in generated JSON (keywords first)."""
    key = keywords(text, limit=12)
    return key or [m.group(0) for m in _WORD.finditer(text)][:12]


def quote(text: str, limit: int = _QUOTE_WORDS) -> str:
    parts = text.split()
    head = " ".join(parts[:limit])
    return (head + "…") if len(parts) > limit else head.rstrip(".")


def join_words(items: list[str]) -> str:
    if not items:
        return "your message"
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def reply_for_prompt(prompt: str, rng: random.Random, images: int = 0) -> str:
    """A reply to one user message: its quoted start, its key words, a closing that varies with the seed."""
    opening, body, closing = rng.choice(_OPENINGS), rng.choice(_BODIES), rng.choice(_CLOSINGS)
    if not prompt.strip():
        if images:
            return f"You sent {images} image{'s' if images > 1 else ''}. I can see {'them' if images > 1 else 'it'}, but I am the offline model, so I will only say that it is there.{closing}"
        return rng.choice(_GREETINGS)
    text = opening.format(quote=quote(prompt))
    if images:
        text += f" I see {images} attached image{'s' if images > 1 else ''}."
    return text + body.format(keys=join_words(keywords(prompt))) + closing


def tool_results(messages: list[dict]) -> list[tuple[str, str]]:
    """(tool name, result text) for the trailing tool / function messages of a conversation."""
    names: dict[str, str] = {}
    for message in messages:
        for call in (message.get("tool_calls") or ()) if isinstance(message, dict) else ():
            if isinstance(call, dict):
                names[str(call.get("id"))] = str(((call.get("function") or call.get("custom") or {}).get("name")) or "tool")
    results: list[tuple[str, str]] = []
    for message in reversed(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role == "tool":
            results.append((names.get(str(message.get("tool_call_id")), "tool"), content_text(message.get("content"))))
        elif role == "function":
            results.append((str(message.get("name") or "function"), content_text(message.get("content"))))
        else:
            break
    return list(reversed(results))


def _clip(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def reply_text(messages: list[dict], rng: random.Random) -> str:
    """The assistant's text reply to a chat conversation (OpenAI chat-format messages)."""
    results = tool_results(messages)
    user = last_user_message(messages)
    prompt = content_text(user.get("content")) if user else ""
    if results:
        said = " ".join(f"The {name} tool returned: {_clip(result) or '(nothing)'}." for name, result in results)
        question = f' That answers "{quote(prompt)}".' if prompt.strip() else ""
        return said + question + rng.choice(_CLOSINGS)
    if user is None:
        return rng.choice(_GREETINGS)
    return reply_for_prompt(prompt, rng, image_count(user.get("content")))


def json_reply(messages: list[dict], rng: random.Random) -> dict:
    """The reply as a JSON object, for `response_format: json_object`."""
    user = last_user_message(messages)
    prompt = content_text(user.get("content")) if user else ""
    return {"answer": reply_text(messages, rng), "keywords": keywords(prompt)}


def continuation_text(prompt: str, rng: random.Random) -> str:
    """A legacy-completion continuation of `prompt` that picks up its key words."""
    keys = keywords(prompt)
    lead = "" if not prompt or prompt[-1].isspace() else " "
    body = rng.choice(
        (
            "and so the story of {keys} goes on.",
            "which brings us back to {keys}.",
            "and that is all there is to say about {keys}.",
        )
    ).format(keys=join_words(keys) if keys else "it")
    return lead + body + rng.choice(_CLOSINGS)
