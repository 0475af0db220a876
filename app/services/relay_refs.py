"""The ids a relayed body names and the ids a relayed answer mints, per protocol (OpenAI Responses and
chat, Anthropic Messages, Gemini): plain functions over parsed JSON, used by app/services/relay_scope.py.

Minted ids are read structurally (a response's id and its output items, a container, an audio reply),
never by a pattern over the bytes, so an id a client gets echoed back (in metadata, say) binds nothing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from app.core.errors import APIError

_MESSAGES = {
    "response": "Previous response with id '{}' not found.",
    "conversation": "Conversation with id '{}' not found.",
    "item": "Item with id '{}' not found.",
    "container": "Container with id '{}' not found.",
    "audio": "Audio with id '{}' not found.",
    "file": "No such File object: {}",
    "vector_store": "Vector store with id '{}' not found.",
    "prompt": "Prompt with id '{}' not found.",
    "upstream": "'{}' not found.",
}


@dataclass(frozen=True)
class Ref:
    """An id a relayed body names. `strict`: it must be the tenant's; otherwise (an item carrying its
    content) it must only not be another tenant's."""
    kind: str
    id: str
    param: str
    strict: bool = True


def not_found(ref: Ref) -> APIError:
    return APIError(_MESSAGES[ref.kind].format(ref.id), status_code=404, param=ref.param)


def _add(refs: list[Ref], kind: str, value, param: str, strict: bool = True) -> None:
    if isinstance(value, str) and value:
        refs.append(Ref(kind, value, param, strict))


def _dicts(value) -> list[tuple[int, dict]]:
    return [(i, v) for i, v in enumerate(value) if isinstance(v, dict)] if isinstance(value, list) else []


# ---- the ids a body names, per protocol ----

def responses_refs(body: dict) -> list[Ref]:
    """POST /responses and /responses/input_tokens."""
    refs: list[Ref] = []
    _add(refs, "response", body.get("previous_response_id"), "previous_response_id")
    conversation = body.get("conversation")
    _add(refs, "conversation", conversation.get("id") if isinstance(conversation, dict) else conversation, "conversation")
    if isinstance(body.get("prompt"), dict):
        _add(refs, "prompt", body["prompt"].get("id"), "prompt.id")
    for i, item in _dicts(body.get("input")):
        kind = item.get("type")
        fetched = kind == "item_reference" or (kind is None and "role" not in item) or (kind == "reasoning" and not item.get("encrypted_content"))
        _add(refs, "item", item.get("id"), f"input[{i}].id", strict=fetched)
        for j, part in _dicts(item.get("content")):
            _add(refs, "file", part.get("file_id"), f"input[{i}].content[{j}].file_id")
    for k, tool in _dicts(body.get("tools")):
        if tool.get("type") == "file_search" and isinstance(tool.get("vector_store_ids"), list):
            for store_id in tool["vector_store_ids"]:
                _add(refs, "vector_store", store_id, f"tools[{k}].vector_store_ids")
        container = tool.get("container")
        _add(refs, "container", container, f"tools[{k}].container")
        if isinstance(container, dict) and isinstance(container.get("file_ids"), list):
            for file_id in container["file_ids"]:
                _add(refs, "file", file_id, f"tools[{k}].container.file_ids")
    return refs


def chat_refs(body: dict) -> list[Ref]:
    """POST /chat/completions: an assistant turn's earlier audio reply, and file parts."""
    refs: list[Ref] = []
    for i, message in _dicts(body.get("messages")):
        if isinstance(message.get("audio"), dict):
            _add(refs, "audio", message["audio"].get("id"), f"messages[{i}].audio.id")
        for j, part in _dicts(message.get("content")):
            if isinstance(part.get("file"), dict):
                _add(refs, "file", part["file"].get("file_id"), f"messages[{i}].content[{j}].file.file_id")
    return refs


def anthropic_refs(body: dict) -> list[Ref]:
    """POST /v1/messages: a code-execution container to reuse, and Files API blocks."""
    refs: list[Ref] = []
    container = body.get("container")
    _add(refs, "container", container.get("id") if isinstance(container, dict) else container, "container")
    for i, message in _dicts(body.get("messages")):
        for j, block in _dicts(message.get("content")):
            source = block.get("source")
            if isinstance(source, dict) and source.get("type") == "file":
                _add(refs, "file", source.get("file_id"), f"messages.{i}.content.{j}.source.file_id")
            if block.get("type") == "container_upload":
                _add(refs, "file", block.get("file_id"), f"messages.{i}.content.{j}.file_id")
    return refs


_GEMINI_FILE = re.compile(r"(^|/)files/[^/?#]+$")


def gemini_refs(body: dict) -> list[Ref]:
    """generateContent: cached contents and uploaded files live in the upstream account, no tenant's."""
    refs: list[Ref] = []
    for name in ("cachedContent", "cached_content"):
        _add(refs, "upstream", body.get(name), name)
    contents = _dicts(body.get("contents"))
    for key in ("systemInstruction", "system_instruction"):
        if isinstance(body.get(key), dict):
            contents.append((-1, body[key]))
    for i, content in contents:
        for j, part in _dicts(content.get("parts")):
            data = part.get("fileData") or part.get("file_data")
            uri = (data.get("fileUri") or data.get("file_uri")) if isinstance(data, dict) else None
            if isinstance(uri, str) and _GEMINI_FILE.search(uri):
                refs.append(Ref("upstream", uri, f"contents[{i}].parts[{j}].fileData.fileUri"))
    return refs


# ---- the ids an answer mints, per protocol ----

def _str(value) -> str | None:
    return value if isinstance(value, str) and value else None


def response_minted(response) -> list[tuple[str, str]]:
    if not isinstance(response, dict) or response.get("object") != "response":
        return []
    found = [("response", response["id"])] if _str(response.get("id")) else []
    for _, item in _dicts(response.get("output")):
        found += _item_minted(item)
    return found


def _item_minted(item) -> list[tuple[str, str]]:
    if not isinstance(item, dict):
        return []
    found = [("item", item["id"])] if _str(item.get("id")) else []
    if _str(item.get("container_id")):
        found.append(("container", item["container_id"]))
    return found


def _response_event(event: dict) -> list[tuple[str, str]]:
    if "response" in event:
        return response_minted(event["response"])
    return _item_minted(event.get("item"))


def _chat_minted(body: dict) -> list[tuple[str, str]]:
    found = []
    for _, choice in _dicts(body.get("choices")):
        for key in ("message", "delta"):
            audio = choice.get(key, {}).get("audio") if isinstance(choice.get(key), dict) else None
            if isinstance(audio, dict) and _str(audio.get("id")):
                found.append(("audio", audio["id"]))
    return found


def _anthropic_minted(body: dict) -> list[tuple[str, str]]:
    for holder in (body, body.get("message"), body.get("delta")):
        container = holder.get("container") if isinstance(holder, dict) else None
        if isinstance(container, dict) and _str(container.get("id")):
            return [("container", container["id"])]
    return []


@dataclass(frozen=True)
class Minting:
    from_body: Callable[[dict], list]
    from_event: Callable[[dict], list]
    frames: re.Pattern  # an SSE frame worth parsing
    head: int | None  # where in the frame to look for it (None: anywhere)


MINTING = {
    "responses": Minting(response_minted, _response_event, re.compile(
        rb'(?:event:\s*|"type"\s*:\s*")response\.(?:created|queued|in_progress|completed|incomplete|failed|output_item\.added|output_item\.done)\b'), 512),
    "chat": Minting(_chat_minted, _chat_minted, re.compile(rb'"audio"\s*:\s*\{'), None),
    "anthropic": Minting(_anthropic_minted, _anthropic_minted, re.compile(rb'(?:event:\s*|"type"\s*:\s*")message_(?:start|delta)\b'), 512),
}
