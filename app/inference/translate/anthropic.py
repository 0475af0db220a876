"""OpenAI chat <-> Anthropic Messages: requests, responses, streams and errors, both ways.

Chat -> Messages lets the Anthropic provider serve OpenAI-shaped calls; Messages -> chat lets
`/v1/messages` run on any other provider. Pure functions over the wire JSON (plain dicts), so the
SDKs' own models can check every shape in tests. Unsupported input raises ValueError (a 400).
"""
from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any, AsyncIterator

from app.inference.base import UpstreamError

DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; OpenAI callers often leave it out.

# Models that still take temperature/top_p and lack native structured outputs: a closed set, since
# sampling parameters are deprecated from Claude Opus 4.7 on (the current SDK no longer has them).
_LEGACY_MODEL = re.compile(r"claude-(?:instant|2|3)|claude-(?:opus|sonnet|haiku)-4(?:-[0-6])?(?:-\d{8})?(?:-v\d+(?::\d+)?)?(?![\w-])")

_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
           "model_context_window_exceeded": "length", "tool_use": "tool_calls", "refusal": "content_filter"}
_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
         "content_filter": "refusal"}


# ---- shared helpers (gemini.py uses these too) ----

def parse_data_url(url: str) -> tuple[str, str] | None:
    """`data:image/png;base64,AAAA` -> ("image/png", "AAAA"); None for any other URL."""
    if not url.startswith("data:") or "," not in url:
        return None
    header, data = url[5:].split(",", 1)
    if not header.endswith(";base64"):
        return None
    return header.split(";")[0] or "application/octet-stream", data


def text_of(content: Any) -> str:
    """The text of a string or of a list of text parts/blocks (other parts are skipped)."""
    if isinstance(content, str):
        return content
    return "".join(part.get("text") or "" for part in content or () if part.get("type") == "text")


def json_object(arguments: Any) -> dict:
    """Tool-call arguments as an object; invalid JSON or a non-object becomes {} (both APIs want one)."""
    if isinstance(arguments, dict):
        return arguments
    try:
        value = json.loads(arguments or "{}")
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def openai_error(status: int, message: str) -> dict:
    """OpenAI's error body for a status, with the type/code OpenAI itself uses."""
    kind = "server_error" if status >= 500 else "requests" if status == 429 else "invalid_request_error"
    code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def error_message(body: Any, default: str = "The upstream provider returned an error.") -> str:
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except ValueError:
            return (body.decode(errors="replace") if isinstance(body, bytes) else body) or default
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return error.get("message") or default
    return (error if isinstance(error, str) else None) or (body.get("message") if isinstance(body, dict) else None) or default


# ---- OpenAI chat -> Anthropic Messages (the Anthropic provider) ----

def _tool_id(value: Any) -> str:
    # Anthropic ids must match ^[a-zA-Z0-9_-]+$; the same mapping on tool_use and tool_result keeps pairs.
    return re.sub(r"[^A-Za-z0-9_-]", "_", str(value or "")) or "call_0"


def _blocks(content: Any) -> list[dict]:
    """User/assistant content (a string or parts) as Anthropic blocks; empty text is dropped (Anthropic
    rejects empty text blocks)."""
    if isinstance(content, str) or content is None:
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in content:
        kind = part.get("type")
        if kind in ("text", "refusal"):
            if text := part.get(kind):
                blocks.append({"type": "text", "text": text, **({"cache_control": part["cache_control"]} if part.get("cache_control") else {})})
        elif kind == "image_url":
            url = (part.get("image_url") or {}).get("url") or ""
            data = parse_data_url(url)
            source = {"type": "base64", "media_type": data[0], "data": data[1]} if data else {"type": "url", "url": url}
            blocks.append({"type": "image", "source": source})
        elif kind == "file" and (data := parse_data_url((part.get("file") or {}).get("file_data") or "")) and data[0] == "application/pdf":
            blocks.append({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": data[1]}})
        else:
            raise ValueError(f"Content parts of type '{kind}' cannot be sent to an Anthropic model.")
    return blocks


def _append(turns: list[dict], role: str, blocks: list[dict]) -> None:
    # Consecutive tool messages (and a user message after them) become one user turn.
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _anthropic_tool(function: dict) -> dict:
    schema = dict(function.get("parameters") or {"type": "object", "properties": {}})
    schema.setdefault("type", "object")
    tool = {"name": function.get("name", ""), "input_schema": schema}
    if function.get("description"):
        tool["description"] = function["description"]
    return tool


def _tool_choice(choice: Any, tools: list[dict]) -> tuple[dict | None, list[dict]]:
    if choice is None or isinstance(choice, str):
        return ({"auto": {"type": "auto"}, "none": {"type": "none"}, "required": {"type": "any"}}.get(choice)), tools
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        # Anthropic has no subset choice: offer only the allowed tools instead.
        allowed = choice.get("allowed_tools") or {}
        names = {(t.get("function") or {}).get("name") for t in allowed.get("tools") or ()}
        return {"type": "any" if allowed.get("mode") == "required" else "auto"}, [t for t in tools if t["name"] in names]
    if isinstance(choice, dict):  # {"type": "function", "function": {"name"}} or legacy {"name"}
        return {"type": "tool", "name": (choice.get("function") or choice).get("name", "")}, tools
    raise ValueError(f"Unsupported tool_choice: {choice!r}")


def chat_to_messages_request(params: dict, *, sampling: bool | None = None) -> dict:
    """`chat.completions.create` params -> `messages.create` params. `stream` is not carried (the
    provider sets it). temperature (clamped to Anthropic's 0..1) and top_p go only to models that
    accept them (`sampling`, default: by model name)."""
    model = params.get("model") or ""
    legacy = bool(_LEGACY_MODEL.search(model))
    system: list[str] = []
    turns: list[dict] = []
    legacy_calls: list[str] = []  # ids given to legacy `function_call`s, paired in order with `function` messages
    for message in params.get("messages") or []:
        role, content = message.get("role"), message.get("content")
        if role in ("system", "developer"):
            if text := text_of(content):
                system.append(text)
        elif role == "user":
            _append(turns, "user", _blocks(content))
        elif role == "assistant":
            blocks = _blocks(content)
            calls = [(c.get("id"), c.get("function") or {}) for c in message.get("tool_calls") or ()]
            if message.get("function_call"):
                legacy_calls.append(f"call_legacy_{len(legacy_calls)}")
                calls.append((legacy_calls[-1], message["function_call"]))
            for call_id, function in calls:
                blocks.append({"type": "tool_use", "id": _tool_id(call_id), "name": function.get("name", ""), "input": json_object(function.get("arguments"))})
            _append(turns, "assistant", blocks)
        elif role in ("tool", "function"):
            call_id = message.get("tool_call_id") if role == "tool" else (legacy_calls.pop(0) if legacy_calls else "call_legacy")
            result = content if isinstance(content, str) else [{"type": "text", "text": p["text"]} for p in content or () if p.get("text")]
            _append(turns, "user", [{"type": "tool_result", "tool_use_id": _tool_id(call_id), "content": result}])
        else:
            raise ValueError(f"Unsupported message role: {role!r}")
    for turn in turns:
        # Anthropic wants tool_result blocks first in their user turn; a lone plain text block is a string.
        turn["content"].sort(key=lambda block: block["type"] != "tool_result")
        if len(turn["content"]) == 1 and turn["content"][0].keys() == {"type", "text"}:
            turn["content"] = turn["content"][0]["text"]

    body: dict = {"model": model, "messages": turns,
                  "max_tokens": params.get("max_completion_tokens") or params.get("max_tokens") or DEFAULT_MAX_TOKENS}
    tools = [_anthropic_tool(t["function"]) for t in params.get("tools") or () if t.get("type", "function") == "function"]
    tools += [_anthropic_tool(f) for f in params.get("functions") or ()]
    if tools:
        choice, tools = _tool_choice(params.get("tool_choice", params.get("function_call")), tools)
        if params.get("parallel_tool_calls") is False and (choice or {}).get("type") != "none":
            choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
        body["tools"] = tools
        if choice:
            body["tool_choice"] = choice
    if (stop := params.get("stop")) is not None:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if sampling if sampling is not None else legacy:
        if params.get("temperature") is not None:
            body["temperature"] = min(float(params["temperature"]), 1.0)
        if params.get("top_p") is not None:
            body["top_p"] = params["top_p"]
    if user := params.get("user") or params.get("safety_identifier"):
        body["metadata"] = {"user_id": user}
    response_format = params.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema") or {}
        if spec.get("strict") and not legacy:
            # Native structured outputs; strict OpenAI schemas already meet their subset.
            body["output_config"] = {"format": {"type": "json_schema", "schema": spec.get("schema") or {}}}
        else:  # best effort: an instruction, not a guarantee
            system.append("Reply with only a JSON value (no prose, no code fences) that conforms to this JSON schema:\n"
                          + json.dumps(spec.get("schema") or {}))
    elif response_format.get("type") == "json_object":
        system.append("Reply with only a valid JSON object (no prose, no code fences).")
    if system:
        body["system"] = "\n\n".join(system)
    return body


def _completion_id(message_id: Any) -> str:
    return "chatcmpl-" + (str(message_id).removeprefix("msg_") if message_id else secrets.token_hex(12))


def _chat_usage(usage: dict) -> dict:
    cached = usage.get("cache_read_input_tokens") or 0
    prompt = (usage.get("input_tokens") or 0) + cached + (usage.get("cache_creation_input_tokens") or 0)
    completion = usage.get("output_tokens") or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached}}


def message_to_chat_completion(message: dict, *, model: str | None = None) -> dict:
    """An Anthropic Message -> `chat.completion`. Text blocks are joined as they stream (no separator);
    thinking and server-tool blocks are dropped."""
    blocks = message.get("content") or []
    text = "".join(b.get("text") or "" for b in blocks if b.get("type") == "text")
    calls = [{"id": b["id"], "type": "function", "function": {"name": b["name"], "arguments": json.dumps(b.get("input") or {}, ensure_ascii=False)}}
             for b in blocks if b.get("type") == "tool_use"]
    reply: dict = {"role": "assistant", "content": text or (None if calls else ""), "refusal": None}
    if calls:
        reply["tool_calls"] = calls
    return {"id": _completion_id(message.get("id")), "object": "chat.completion", "created": int(time.time()),
            "model": model or message.get("model") or "",
            "choices": [{"index": 0, "message": reply, "finish_reason": _FINISH.get(message.get("stop_reason"), "stop"), "logprobs": None}],
            "usage": _chat_usage(message.get("usage") or {})}


async def messages_stream_to_chat_chunks(events: AsyncIterator[dict], *, include_usage: bool) -> AsyncIterator[dict]:
    """Anthropic stream events -> `chat.completion.chunk`s. An `error` event raises UpstreamError."""
    chunk_id, model, created = _completion_id(None), "", int(time.time())
    usage: dict = {}
    tools: dict[int, list] = {}  # content block index -> [tool-call index, arguments sent?]

    def chunk(delta: dict, finish_reason: str | None = None) -> dict:
        return {"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]}

    async for event in events:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            chunk_id, model = _completion_id(message.get("id")), message.get("model") or ""
            usage = dict(message.get("usage") or {})
            yield chunk({"role": "assistant", "content": ""})
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "text" and block.get("text"):
                yield chunk({"content": block["text"]})
            elif block.get("type") == "tool_use":
                initial = json.dumps(block["input"]) if block.get("input") else ""
                tools[event.get("index", 0)] = slot = [len(tools), bool(initial)]
                function = {"name": block.get("name", ""), "arguments": initial}
                yield chunk({"tool_calls": [{"index": slot[0], "id": block.get("id"), "type": "function", "function": function}]})
        elif kind == "content_block_delta":
            delta, slot = event.get("delta") or {}, tools.get(event.get("index", 0))
            if delta.get("type") == "text_delta" and delta.get("text"):
                yield chunk({"content": delta["text"]})
            elif delta.get("type") == "input_json_delta" and delta.get("partial_json") and slot:
                slot[1] = True
                yield chunk({"tool_calls": [{"index": slot[0], "function": {"arguments": delta["partial_json"]}}]})
        elif kind == "content_block_stop":
            slot = tools.get(event.get("index", 0))
            if slot and not slot[1]:  # a call without arguments: "{}" keeps the arguments valid JSON
                slot[1] = True
                yield chunk({"tool_calls": [{"index": slot[0], "function": {"arguments": "{}"}}]})
        elif kind == "message_delta":
            usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            yield chunk({}, _FINISH.get((event.get("delta") or {}).get("stop_reason"), "stop"))
        elif kind == "error":
            error = event.get("error") or {}
            status = _STATUS_BY_TYPE.get(error.get("type"), 500)
            raise UpstreamError(status, anthropic_error_to_openai(status, event))
    if include_usage:
        yield {"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": model,
               "choices": [], "usage": _chat_usage(usage)}


# ---- Anthropic Messages -> OpenAI chat (`/v1/messages` on any other provider) ----

def _chat_parts(block: dict) -> list[dict]:
    kind = block.get("type")
    if kind == "text":
        return [{"type": "text", "text": block.get("text", "")}]
    source = block.get("source") or {}
    if kind == "image":
        if source.get("type") not in ("url", "base64"):
            raise ValueError(f"Image sources of type '{source.get('type')}' are not supported by this model.")
        url = source.get("url") if source.get("type") == "url" else f"data:{source.get('media_type')};base64,{source.get('data')}"
        return [{"type": "image_url", "image_url": {"url": url}}]
    if kind == "document":
        title = f"{block['title']}\n\n" if block.get("title") else ""
        if source.get("type") == "text":
            return [{"type": "text", "text": title + source.get("data", "")}]
        if source.get("type") == "content":
            return [{"type": "text", "text": title + text_of(source.get("content"))}]
        if source.get("type") == "base64":
            file = {"filename": block.get("title") or "document.pdf", "file_data": f"data:{source.get('media_type')};base64,{source.get('data')}"}
            return [{"type": "file", "file": file}]
        raise ValueError(f"Document sources of type '{source.get('type')}' are not supported by this model.")
    raise ValueError(f"Content blocks of type '{kind}' are not supported by this model.")


def _chat_messages(message: dict) -> list[dict]:
    content = message.get("content")
    if message["role"] == "system":  # mid-conversation system turns (a beta Claude Code uses)
        return [{"role": "system", "content": text_of(content)}]
    if isinstance(content, str):
        return [{"role": message["role"], "content": content}]
    if message["role"] == "assistant":
        # thinking and server-tool blocks have no place in the chat shape; the model does not need them back
        text = "".join(b.get("text") or "" for b in content if b.get("type") == "text")
        calls = [{"id": b["id"], "type": "function", "function": {"name": b["name"], "arguments": json.dumps(b.get("input") or {}, ensure_ascii=False)}}
                 for b in content if b.get("type") == "tool_use"]
        return [{"role": "assistant", "content": text or (None if calls else ""), **({"tool_calls": calls} if calls else {})}]
    out, parts = [], []
    for block in content:
        if block.get("type") != "tool_result":
            parts += _chat_parts(block)
            continue
        # A tool message holds text only: images a tool returned follow in the user message.
        result = block.get("content")
        result_parts = [{"type": "text", "text": result}] if isinstance(result, str) else [p for b in result or () for p in _chat_parts(b)]
        text = "".join(p["text"] for p in result_parts if p["type"] == "text")
        parts += [p for p in result_parts if p["type"] != "text"]
        out.append({"role": "tool", "tool_call_id": block.get("tool_use_id", ""), "content": f"Error: {text}" if block.get("is_error") else text})
    if parts:
        single = len(parts) == 1 and parts[0]["type"] == "text"
        out.append({"role": "user", "content": parts[0]["text"] if single else parts})
    return out


def messages_to_chat_request(params: dict) -> dict:
    """`messages.create` params -> `chat.completions.create` params. Dropped: `stream`, `top_k`,
    `thinking`, server tools (web search, bash, …); stop_sequences are cut to OpenAI's 4."""
    messages = []
    system = params.get("system")
    if system := system if isinstance(system, str) else "\n\n".join(b.get("text", "") for b in system or () if b.get("type") == "text"):
        messages.append({"role": "system", "content": system})
    for message in params.get("messages") or []:
        messages += _chat_messages(message)
    body: dict = {"model": params.get("model", ""), "messages": messages}
    if params.get("max_tokens"):
        body["max_completion_tokens"] = params["max_tokens"]
    tools = [{"type": "function", "function": {"name": t["name"], "parameters": t.get("input_schema") or {"type": "object"},
                                               **({"description": t["description"]} if t.get("description") else {})}}
             for t in params.get("tools") or () if t.get("type") in (None, "custom") and "name" in t]
    if tools:
        body["tools"] = tools
        choice = params.get("tool_choice") or {}
        mapped = {"auto": "auto", "any": "required", "none": "none"}.get(choice.get("type"))
        if choice.get("type") == "tool":
            mapped = {"type": "function", "function": {"name": choice.get("name", "")}}
        if mapped:
            body["tool_choice"] = mapped
        if choice.get("disable_parallel_tool_use"):
            body["parallel_tool_calls"] = False
    if params.get("stop_sequences"):
        body["stop"] = list(params["stop_sequences"])[:4]
    for key in ("temperature", "top_p"):
        if params.get(key) is not None:
            body[key] = params[key]
    if user := (params.get("metadata") or {}).get("user_id"):
        body["user"] = user
    # output_config.format, or output_format as the structured-outputs beta spelled it
    output_format = (params.get("output_config") or {}).get("format") or params.get("output_format") or {}
    if output_format.get("type") == "json_schema":
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "output", "schema": output_format.get("schema") or {}, "strict": True}}
    return body


def _message_id(completion_id: Any) -> str:
    return "msg_" + (str(completion_id).removeprefix("chatcmpl-") if completion_id else secrets.token_hex(12))


# The fields Anthropic's Usage and Message always carry (null or zero when nothing applies).
_USAGE_EXTRAS = {"cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0}, "server_tool_use": None,
                 "service_tier": "standard", "inference_geo": None}
_MESSAGE_EXTRAS = {"stop_details": None, "container": None}
_DIRECT = {"type": "direct"}  # who called a tool: the model itself


def _anthropic_usage(usage: dict | None) -> dict:
    usage = usage or {}
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return {"input_tokens": (usage.get("prompt_tokens") or 0) - cached, "output_tokens": usage.get("completion_tokens") or 0,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached, **_USAGE_EXTRAS}


def chat_completion_to_message(completion: dict, *, model: str) -> dict:
    choice = (completion.get("choices") or [{}])[0]
    reply = choice.get("message") or {}
    content: list[dict] = []
    if text := reply.get("content") or reply.get("refusal"):
        content.append({"type": "text", "text": text, "citations": None})
    for call in reply.get("tool_calls") or ():
        function = call.get("function") or {}
        content.append({"type": "tool_use", "id": call.get("id") or _message_id(None).replace("msg_", "toolu_"),
                        "name": function.get("name", ""), "input": json_object(function.get("arguments")), "caller": _DIRECT})
    stop = "refusal" if reply.get("refusal") and not reply.get("content") else _STOP.get(choice.get("finish_reason"), "end_turn")
    return {"id": _message_id(completion.get("id")), "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop, "stop_sequence": None, **_MESSAGE_EXTRAS, "usage": _anthropic_usage(completion.get("usage"))}


class _MessageEvents:
    """Chat chunks -> Anthropic content-block events, one block open at a time as Anthropic streams.
    Tool-call fragments are expected in order (as OpenAI sends them): a fragment for a call whose block
    already closed cannot be placed and is dropped."""

    def __init__(self) -> None:
        self.index, self.open, self.started, self.pinged = -1, None, set(), False
        self.stop_reason, self.usage = None, None

    def _start(self, block: dict, open_as: Any) -> list[tuple[str, dict]]:
        events = self.close()
        self.index, self.open = self.index + 1, open_as
        events.append(("content_block_start", {"type": "content_block_start", "index": self.index, "content_block": block}))
        if not self.pinged:  # Anthropic sends one ping after the first block starts
            self.pinged = True
            events.append(("ping", {"type": "ping"}))
        return events

    def _delta(self, delta: dict) -> tuple[str, dict]:
        return "content_block_delta", {"type": "content_block_delta", "index": self.index, "delta": delta}

    def close(self) -> list[tuple[str, dict]]:
        if self.open is None:
            return []
        self.open = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self.index})]

    def feed(self, chunk: dict) -> list[tuple[str, dict]]:
        events: list[tuple[str, dict]] = []
        self.usage = chunk.get("usage") or self.usage
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue  # a Message has one answer
            delta = choice.get("delta") or {}
            if text := delta.get("content") or delta.get("refusal"):
                if self.open != "text":
                    events += self._start({"type": "text", "text": "", "citations": None}, "text")
                events.append(self._delta({"type": "text_delta", "text": text}))
            for call in delta.get("tool_calls") or ():
                tool, function = call.get("index", 0), call.get("function") or {}
                if tool not in self.started:
                    self.started.add(tool)
                    block = {"type": "tool_use", "id": call.get("id") or "toolu_" + secrets.token_hex(12), "name": function.get("name") or "", "input": {},
                             "caller": _DIRECT}
                    events += self._start(block, ("tool", tool))
                if function.get("arguments") and self.open == ("tool", tool):
                    events.append(self._delta({"type": "input_json_delta", "partial_json": function["arguments"]}))
            if choice.get("finish_reason"):
                self.stop_reason = _STOP.get(choice["finish_reason"], "end_turn")
        return events

    def finish(self) -> list[tuple[str, dict]]:
        usage: dict = {"output_tokens": (self.usage or {}).get("completion_tokens") or 0}
        if self.usage and self.usage.get("prompt_tokens") is not None:
            usage.update({k: v for k, v in _anthropic_usage(self.usage).items() if k != "output_tokens"})
        delta = {"stop_reason": self.stop_reason or "end_turn", "stop_sequence": None}
        return [*self.close(), ("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}),
                ("message_stop", {"type": "message_stop"})]


async def chat_chunks_to_messages_stream(chunks: AsyncIterator[dict], *, model: str, input_tokens: int) -> AsyncIterator[tuple[str, dict]]:
    """`chat.completion.chunk`s -> (event name, data) in Anthropic's order. The first chunk is awaited
    before message_start so the message id matches the completion's (and an early error is raised
    before any event)."""
    iterator = chunks.__aiter__()
    first = await anext(iterator, None)
    message = {"id": _message_id(first.get("id") if first else None), "type": "message", "role": "assistant", "model": model,
               "content": [], "stop_reason": None, "stop_sequence": None, **_MESSAGE_EXTRAS,
               "usage": {"input_tokens": input_tokens, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                         **_USAGE_EXTRAS}}
    yield "message_start", {"type": "message_start", "message": message}
    events = _MessageEvents()
    if first is not None:
        for item in events.feed(first):
            yield item
        async for chunk in iterator:
            for item in events.feed(chunk):
                yield item
    for item in events.finish():
        yield item


# ---- errors ----

_TYPE_BY_STATUS = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error", 403: "permission_error",
                   404: "not_found_error", 408: "timeout_error", 429: "rate_limit_error", 500: "api_error",
                   503: "overloaded_error", 504: "timeout_error", 529: "overloaded_error"}
_STATUS_BY_TYPE = {"invalid_request_error": 400, "authentication_error": 401, "billing_error": 402, "permission_error": 403,
                   "not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429, "api_error": 500,
                   "timeout_error": 504, "overloaded_error": 529}


def openai_error_to_anthropic(status: int, body: Any, request_id: str | None = None) -> dict:
    """OpenAI's error body (a dict, or its JSON bytes) -> Anthropic's, typed by status."""
    kind = _TYPE_BY_STATUS.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": error_message(body)}, "request_id": request_id}


def anthropic_error_to_openai(status: int, body: Any) -> dict:
    return openai_error(status, error_message(body))
