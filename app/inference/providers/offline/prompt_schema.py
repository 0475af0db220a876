"""A JSON schema written into the prompt, for frameworks that ask for structured output in words.

LangChain's json mode and output parsers, Instructor's JSON and MD_JSON modes and Pydantic AI's
PromptedOutput put the schema in a system or user message ("…a JSON instance that conforms to the JSON
schema below: {…}") instead of `response_format.json_schema`. A real model answers with an instance of
it; so does the offline model: with `json_object`, and with plain text when the message holding the
schema asks for JSON. LangChain shows an example schema before the real one, so the last one wins.
"""
from __future__ import annotations

import json
import re

from app.inference.providers.offline.text import content_text, last_user_message

MAX_SCAN_CHARS = 64 * 1024  # of each message: a schema longer than this is not looked for
MAX_DECODES = 64  # JSON objects tried per message (each at most MAX_SCAN_CHARS of C-speed scanning)
_OBJECT_START = re.compile(r'\{\s*"')
_ASKS_FOR_JSON = re.compile(r"(?<![A-Za-z])json", re.IGNORECASE)
_DECODER = json.JSONDecoder()


def schema_in_prompt(messages: list[dict], *, asked: bool) -> dict | None:
    """The schema the prompt asks the answer to follow: from the last user message, else the system or
    developer messages (latest first). Unless `asked` (json_object mode), the message must say JSON."""
    user = last_user_message(messages)
    candidates = [user] if user else []
    candidates += [m for m in reversed(messages) if isinstance(m, dict) and m.get("role") in ("system", "developer")]
    for message in candidates:
        text = content_text(message.get("content"))[:MAX_SCAN_CHARS]
        if "{" not in text or not (asked or _ASKS_FOR_JSON.search(text)):
            continue
        schema = _last_schema(text)
        if schema is not None:
            return schema
    return None


def _last_schema(text: str) -> dict | None:
    found = None
    match = _OBJECT_START.search(text)
    for _ in range(MAX_DECODES):
        if match is None:
            break
        try:
            value, end = _DECODER.raw_decode(text, match.start())
        except ValueError:
            match = _OBJECT_START.search(text, match.start() + 1)
            continue
        if _looks_like_schema(value):
            found = value
        match = _OBJECT_START.search(text, end)
    return found


def _looks_like_schema(value) -> bool:
    """An object schema: `properties` mapping names to schemas (not an instance such as
    {"properties": {"foo": ["bar"]}}, which LangChain shows as a counter-example)."""
    if not isinstance(value, dict):
        return False
    properties = value.get("properties")
    if isinstance(properties, dict) and properties and all(isinstance(p, dict) for p in properties.values()):
        return value.get("type", "object") == "object"
    return False
