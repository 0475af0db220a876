"""Responses items: the request's `input` as stored items (with ids), items as chat-completions messages
(the router's pivot: every provider speaks chat), and the output items a response is made of.

Why chat: a response then works against the offline model and every upstream alike. Built-in tools
(file_search, image_generation) are offered to the model as functions and executed here; their calls are not replayed
to the model from earlier responses (the reply that used them is).
"""
from __future__ import annotations

import base64
import json

from app.core.errors import invalid_request
from app.core.ids import new_id
from app.services.responses import compaction

_PREFIX = {"message": "msg_", "function_call": "fc_", "function_call_output": "fco_", "file_search_call": "fs_", "reasoning": "rs_",
           "custom_tool_call": "ctc_", "custom_tool_call_output": "ctco_", "image_generation_call": "ig_", "compaction": "cmp_",
           "code_interpreter_call": "ci_"}
_PAIRED = ("function_call", "function_call_output", "custom_tool_call", "custom_tool_call_output")


def input_items(value) -> list[dict]:
    """`input` (a string or a list of items) as items in their stored shapes, each with an id."""
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    out = []
    for index, item in enumerate(value or ()):
        kind = item.get("type") or "message"
        if kind == "message":
            content = item.get("content")
            if isinstance(content, str):
                part = "output_text" if item.get("role") == "assistant" else "input_text"
                content = [{"type": part, "text": content, **({"annotations": []} if part == "output_text" else {})}]
            stored = {"id": item.get("id") or new_id("msg_"), "type": "message", "role": item.get("role", "user"),
                      "content": [dict(p) for p in content or ()], "status": item.get("status") or "completed"}
        elif kind == "item_reference":
            continue
        else:
            # Other items (the SDK's types already checked them) are kept; those the model cannot use
            # (reasoning, hosted tools' calls) are not shown to it. A call and its output are paired by
            # call_id, which the SDK's current types leave optional and the API requires.
            if kind in _PAIRED and not isinstance(item.get("call_id"), str):
                raise invalid_request(f"Missing required parameter: 'input[{index}].call_id'.", param=f"input[{index}].call_id",
                                      code="missing_required_parameter")
            if kind == "compaction":
                compaction.check_item(item, index)
            stored = {**item, "id": item.get("id") or new_id(_PREFIX.get(kind, "item_"))}
            if kind in ("function_call_output", "custom_tool_call_output"):
                stored.setdefault("status", "completed")
        out.append(stored)
    return out


async def _part(part: dict, file_bytes) -> dict | None:
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": part.get("text") or ""}
    if kind == "input_image":
        url = part.get("image_url")
        if not url and part.get("file_id"):
            found = await file_bytes(part["file_id"])
            if found is None:
                return None
            mime, data = found
            url = f"data:{mime};base64,{base64.b64encode(data).decode()}"
        return {"type": "image_url", "image_url": {"url": url, "detail": part.get("detail") or "auto"}} if url else None
    if kind == "input_file":
        # A stored file travels as its bytes: an upstream knows nothing of this server's file ids.
        file = {k: part[k] for k in ("file_data", "filename") if part.get(k)}
        if not file.get("file_data") and part.get("file_id"):
            found = await file_bytes(part["file_id"])
            if found is None:
                return None
            mime, data = found
            file = {"filename": part.get("filename") or part["file_id"], "file_data": f"data:{mime};base64,{base64.b64encode(data).decode()}"}
        return {"type": "file", "file": file} if file.get("file_data") else None
    if kind == "refusal":
        return {"type": "text", "text": part.get("refusal") or ""}
    return None


async def to_messages(found: list[dict], file_bytes) -> list[dict]:
    """Items (oldest first) as chat messages: developer → system, function calls → assistant tool
    calls (consecutive calls share one message), outputs → tool messages, a compaction → its summary as a
    system message; reasoning is dropped."""
    messages: list[dict] = []
    for item in found:
        kind = item.get("type", "message")
        if kind == "message":
            role = {"developer": "system"}.get(item["role"], item["role"])
            parts = [p for p in [await _part(p, file_bytes) for p in item.get("content") or ()] if p is not None]
            if role in ("system", "assistant") or all(p["type"] == "text" for p in parts):
                content = "\n".join(p["text"] for p in parts if p["type"] == "text")
            else:
                content = parts
            messages.append({"role": role, "content": content})
        elif kind in ("function_call", "custom_tool_call"):
            if kind == "function_call":
                call = {"id": item["call_id"], "type": "function", "function": {"name": item["name"], "arguments": item.get("arguments") or ""}}
            else:
                call = {"id": item["call_id"], "type": "custom", "custom": {"name": item["name"], "input": item.get("input") or ""}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls") and not last.get("content"):
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "shell_call":  # the hosted shell's call and output, as the `shell` function's
            arguments = json.dumps({"commands": (item.get("action") or {}).get("commands") or []})
            call = {"id": item["call_id"], "type": "function", "function": {"name": "shell", "arguments": arguments}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls") and not last.get("content"):
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "shell_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": json.dumps(item.get("output") or [])})
        elif kind == "compaction":  # the summary it carries stands in for the history it replaced
            summary = compaction.as_message(item)
            if summary is not None:
                messages.append(summary)
        elif kind in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output")
            if not isinstance(output, str):
                output = "\n".join(p.get("text") or "" for p in output or () if isinstance(p, dict))
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": output})
    return messages


# ---- output items ----

def message_item(item_id: str, text: str, status: str, annotations: list[dict] | None = None, logprobs: list[dict] | None = None) -> dict:
    content = [output_text(text, annotations, logprobs)] if status != "in_progress" else []
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def output_text(text: str, annotations: list[dict] | None = None, logprobs: list[dict] | None = None) -> dict:
    return {"type": "output_text", "text": text, "annotations": annotations or [], "logprobs": logprobs or []}


def logprobs(choice: dict) -> list[dict]:
    """A chat chunk's token logprobs in the Responses shape (with bytes: the output_text part's)."""
    return [{"token": e["token"], "bytes": e.get("bytes") or list(e["token"].encode()), "logprob": e["logprob"],
             "top_logprobs": [{"token": t["token"], "bytes": t.get("bytes") or list(t["token"].encode()), "logprob": t["logprob"]}
                              for t in e.get("top_logprobs") or ()]}
            for e in ((choice.get("logprobs") or {}).get("content") or ())]


def delta_logprobs(entries: list[dict]) -> list[dict]:
    """The same, as a text delta event carries them (no bytes)."""
    return [{"token": e["token"], "logprob": e["logprob"], "top_logprobs": [{"token": t["token"], "logprob": t["logprob"]} for t in e["top_logprobs"]]}
            for e in entries]


def function_call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict:
    return {"id": item_id, "type": "function_call", "status": status, "call_id": call_id, "name": name, "arguments": arguments}


def custom_call_item(item_id: str, call_id: str, name: str, text: str, status: str) -> dict:
    return {"id": item_id, "type": "custom_tool_call", "status": status, "call_id": call_id, "name": name, "input": text}


def file_search_item(item_id: str, queries: list[str], status: str, results: list[dict] | None) -> dict:
    return {"id": item_id, "type": "file_search_call", "status": status, "queries": queries, "results": results}


def image_call_item(item_id: str, status: str, **fields) -> dict:
    """An image_generation_call: `result` (the image, base64) once completed, with the settings used."""
    return {"id": item_id, "type": "image_generation_call", "status": status, "result": None, **fields}


def query_of(arguments: str) -> str:
    try:
        value = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return arguments or ""
    found = value.get("query") if isinstance(value, dict) else None
    return found if isinstance(found, str) else ""


def prompt_of(arguments: str) -> str:
    """The `prompt` argument of an image_generation call (its raw arguments if they are not JSON)."""
    try:
        value = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return arguments or ""
    found = value.get("prompt") if isinstance(value, dict) else None
    return found if isinstance(found, str) else ""


def citations(text: str, results: list[dict]) -> list[dict]:
    """`file_citation` annotations for the searched files a reply mentions (by name or by content)."""
    out, seen = [], set()
    for result in results:
        if result["file_id"] in seen:
            continue
        if result["filename"] in text or (result.get("text") or "")[:40] in text:
            seen.add(result["file_id"])
            out.append({"type": "file_citation", "file_id": result["file_id"], "filename": result["filename"], "index": len(text)})
    return out
