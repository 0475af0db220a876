"""OpenAI chat <-> Gemini generateContent (REST JSON): requests, responses, streams and errors, both ways.

Chat -> Gemini lets the Gemini provider serve OpenAI-shaped calls; Gemini -> chat lets the Gemini
endpoints run on any other provider. `streamGenerateContent?alt=sse` is a sequence of ordinary
GenerateContentResponse objects, so streams translate object by object.

Gemini rarely sends call ids, and thinking models want each functionCall's `thoughtSignature` back
(Gemini 3 answers 400 without it). The OpenAI tool-call id carries it: `<id>_ts_<signature in URL-safe
base64>`, so OpenAI and Anthropic clients hand it back to us without knowing. A replayed call that has
no signature (history from another model) gets Google's documented skip sentinel.
"""
from __future__ import annotations

import itertools
import json
import mimetypes
import re
import secrets
import time
from typing import Any, AsyncIterator

from app.inference.base import UpstreamError
from app.inference.translate.anthropic import error_message, json_object, openai_error, parse_data_url, text_of

_FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter", "RECITATION": "content_filter",
           "BLOCKLIST": "content_filter", "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter",
           "IMAGE_SAFETY": "content_filter"}
_FINISH_BACK = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "function_call": "STOP", "content_filter": "SAFETY"}
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 409: "ABORTED",
           429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE",
           504: "DEADLINE_EXCEEDED"}

# The OpenAPI subset Gemini's Schema takes; everything else (additionalProperties, $schema, …) is dropped.
_SCHEMA_KEYS = {"description", "title", "nullable", "minItems", "maxItems", "minProperties", "maxProperties",
                "minLength", "maxLength", "pattern", "minimum", "maximum", "default", "propertyOrdering"}
_FORMATS = {"STRING": {"enum", "date-time"}, "NUMBER": {"float", "double"}, "INTEGER": {"int32", "int64"}}


def _get(obj: dict, camel: str) -> Any:
    """REST accepts camelCase and snake_case field names (curl examples use the latter)."""
    if camel in obj:
        return obj[camel]
    return obj.get("".join("_" + c.lower() if c.isupper() else c for c in camel))


# ---- schemas ----

def to_gemini_schema(schema: dict, defs: dict | None = None, depth: int = 0) -> dict:
    """A JSON schema -> Gemini's Schema: $ref inlined (recursion cut at depth 8), type lists and
    null branches become `nullable`, const/enum become string enums."""
    defs = {**(defs or {}), **schema.get("$defs", {}), **schema.get("definitions", {})}
    if "$ref" in schema:  # siblings (pydantic puts a field's description there) override the target's
        target = defs.get(schema["$ref"].rsplit("/", 1)[-1])
        resolved = to_gemini_schema(target, defs, depth + 1) if target is not None and depth < 8 else {"type": "OBJECT"}
        return {**resolved, **{key: schema[key] for key in ("description", "title", "default") if key in schema}}
    out = {key: schema[key] for key in _SCHEMA_KEYS if key in schema}
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else list(kinds or [])
    branches = [s for s in schema.get("anyOf") or schema.get("oneOf") or () if s.get("type") != "null"]
    if "null" in kinds or len(branches) < len(schema.get("anyOf") or schema.get("oneOf") or ()):
        out["nullable"] = True
    kinds = [k for k in kinds if k != "null"]
    if len(branches) == 1 and not kinds:
        out.update({k: v for k, v in to_gemini_schema(branches[0], defs, depth + 1).items() if k not in out})
    elif branches:
        out["anyOf"] = [to_gemini_schema(b, defs, depth + 1) for b in branches]
    elif len(kinds) > 1:
        out["anyOf"] = [to_gemini_schema({**schema, "type": k}, defs, depth + 1) for k in kinds]
        return out
    if len(schema.get("allOf") or ()) == 1:
        out.update(to_gemini_schema(schema["allOf"][0], defs, depth + 1))
    if kinds:
        out["type"] = kinds[0].upper()
    values = [schema["const"]] if "const" in schema else schema.get("enum")
    if values is not None:
        if all(isinstance(v, str) for v in values):
            out.update(type="STRING", enum=values)
        else:  # Gemini enums are strings only: say it instead
            out["description"] = (out.get("description", "") + f" One of: {', '.join(json.dumps(v) for v in values)}.").strip()
    if schema.get("format") in _FORMATS.get(out.get("type"), ()):
        out["format"] = schema["format"]
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {name: to_gemini_schema(s, defs, depth + 1) for name, s in schema["properties"].items()}
        if required := [name for name in schema.get("required", []) if name in out["properties"]]:  # Gemini rejects others
            out["required"] = required
    if isinstance(schema.get("items"), dict):
        out["items"] = to_gemini_schema(schema["items"], defs, depth + 1)
    return out


def from_gemini_schema(schema: dict) -> dict:
    """Gemini's Schema -> JSON schema: lower-case types, `nullable` as a ["t", "null"] type."""
    out = {k: v for k, v in schema.items() if k not in ("type", "nullable", "properties", "items", "anyOf", "propertyOrdering", "example")}
    if schema.get("type"):
        kind = str(schema["type"]).lower()
        out["type"] = [kind, "null"] if schema.get("nullable") else kind
    if "properties" in schema:
        out["properties"] = {name: from_gemini_schema(s) for name, s in schema["properties"].items()}
    if "items" in schema:
        out["items"] = from_gemini_schema(schema["items"])
    if "anyOf" in schema:
        out["anyOf"] = [from_gemini_schema(s) for s in schema["anyOf"]] + ([{"type": "null"}] if schema.get("nullable") and not schema.get("type") else [])
    return out


# ---- tool-call ids carrying thought signatures ----

_SKIP_SIGNATURE = "skip_thought_signature_validator"
_SIGNED_MODELS = re.compile(r"gemini-(?![12][.-])")  # Gemini 3 on reject unsigned function calls


def _call_id(part: dict, fallback: str | None = None) -> str:
    call = _get(part, "functionCall") or {}
    base = call.get("id") or fallback or "call_" + secrets.token_hex(12)
    signature = _get(part, "thoughtSignature")
    return f"{base}_ts_{signature.replace('+', '-').replace('/', '_').rstrip('=')}" if signature else base


def _split_id(call: dict) -> tuple[str, str | None]:
    """An OpenAI tool call -> (Gemini call id, thought signature in standard base64 or None)."""
    base, _, signature = str(call.get("id") or "").partition("_ts_")
    signature = signature or ((call.get("extra_content") or {}).get("google") or {}).get("thought_signature")  # Google's own OpenAI layer
    if not signature:
        return base, None
    signature = signature.replace("-", "+").replace("_", "/")
    return base, signature + "=" * (-len(signature) % 4)


# ---- OpenAI chat -> Gemini (the Gemini provider) ----

def _parts(content: Any) -> list[dict]:
    if isinstance(content, str) or content is None:
        return [{"text": content}] if content else []
    parts = []
    for part in content:
        kind = part.get("type")
        if kind in ("text", "refusal"):
            if part.get(kind):
                parts.append({"text": part[kind]})
        elif kind == "image_url":
            url = (part.get("image_url") or {}).get("url") or ""
            data = parse_data_url(url)
            mime = mimetypes.guess_type(url.split("?")[0])[0] or "image/jpeg"
            parts.append({"inlineData": {"mimeType": data[0], "data": data[1]}} if data else {"fileData": {"mimeType": mime, "fileUri": url}})
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            parts.append({"inlineData": {"mimeType": f"audio/{audio.get('format', 'wav')}", "data": audio.get("data", "")}})
        elif kind == "file" and (data := parse_data_url((part.get("file") or {}).get("file_data") or "")):
            parts.append({"inlineData": {"mimeType": data[0], "data": data[1]}})
        else:
            raise ValueError(f"Content parts of type '{kind}' cannot be sent to a Gemini model.")
    return parts


def _append(contents: list[dict], role: str, parts: list[dict]) -> None:
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _tool_choice(choice: Any) -> dict | None:
    if choice in ("auto", "none", "required"):
        return {"mode": {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice]}
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = choice.get("allowed_tools") or {}
        names = [(t.get("function") or {}).get("name") for t in allowed.get("tools") or ()]
        return {"mode": "ANY" if allowed.get("mode") == "required" else "AUTO", "allowedFunctionNames": names}
    if isinstance(choice, dict):
        return {"mode": "ANY", "allowedFunctionNames": [(choice.get("function") or choice).get("name", "")]}
    return None


def chat_to_gemini_request(params: dict) -> dict:
    """`chat.completions.create` params -> a generateContent body (the model goes in the URL; `stream`
    picks the endpoint). Dropped: logprobs, logit_bias, user, parallel_tool_calls, reasoning_effort.
    A tool result that is a JSON object is sent as the functionResponse; other text as {"result": text}."""
    system, contents, names = [], [], {}
    for message in params.get("messages") or []:
        role, content = message.get("role"), message.get("content")
        if role in ("system", "developer"):
            if text := text_of(content):
                system.append({"text": text})
        elif role == "user":
            _append(contents, "user", _parts(content))
        elif role == "assistant":
            calls = [_function_call_part(call) for call in message.get("tool_calls") or ()]
            if call := message.get("function_call"):
                calls.append({"functionCall": {"name": call.get("name", ""), "args": json_object(call.get("arguments"))}})
            if calls and "thoughtSignature" not in calls[0] and _SIGNED_MODELS.search(params.get("model") or ""):
                calls[0]["thoughtSignature"] = _SKIP_SIGNATURE  # only a step's first call carries one
            names.update({call.get("id"): (call.get("function") or {}).get("name", "") for call in message.get("tool_calls") or ()})
            _append(contents, "model", _parts(content) + calls)
        elif role in ("tool", "function"):
            call_id = _split_id({"id": message.get("tool_call_id")})[0] if role == "tool" else None
            name = names.get(message.get("tool_call_id"), "") if role == "tool" else message.get("name", "")
            text = text_of(content)
            # Gemini wants an object back: a JSON object result is passed as is, anything else wrapped.
            result = json_object(text) if text.lstrip().startswith("{") else {}
            response = {"name": name, "response": result or {"result": text}, **({"id": call_id} if call_id else {})}
            _append(contents, "user", [{"functionResponse": response}])
        else:
            raise ValueError(f"Unsupported message role: {role!r}")
    body: dict = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    functions = [t["function"] for t in params.get("tools") or () if t.get("type", "function") == "function"] + list(params.get("functions") or ())
    if functions:
        declarations = []
        for function in functions:
            declaration = {"name": function.get("name", "")}
            if function.get("description"):
                declaration["description"] = function["description"]
            schema = to_gemini_schema(function.get("parameters") or {})
            if schema.get("properties"):  # Gemini rejects an OBJECT with no properties: omit instead
                declaration["parameters"] = schema
            declarations.append(declaration)
        body["tools"] = [{"functionDeclarations": declarations}]
        if config := _tool_choice(params.get("tool_choice", params.get("function_call"))):
            body["toolConfig"] = {"functionCallingConfig": config}
    generation: dict = {}
    if max_tokens := params.get("max_completion_tokens") or params.get("max_tokens"):
        generation["maxOutputTokens"] = max_tokens
    for source, target in (("temperature", "temperature"), ("top_p", "topP"), ("n", "candidateCount"), ("seed", "seed"),
                           ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty")):
        if params.get(source) is not None:
            generation[target] = params[source]
    if (stop := params.get("stop")) is not None:
        generation["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    response_format = params.get("response_format") or {}
    if response_format.get("type") in ("json_object", "json_schema"):
        generation["responseMimeType"] = "application/json"
        if schema := (response_format.get("json_schema") or {}).get("schema"):
            generation["responseSchema"] = to_gemini_schema(schema)
    if generation:
        body["generationConfig"] = generation
    return body


def _chat_usage(metadata: dict) -> dict:
    thoughts = metadata.get("thoughtsTokenCount") or 0
    prompt = (metadata.get("promptTokenCount") or 0) + (metadata.get("toolUsePromptTokenCount") or 0)
    completion = (metadata.get("candidatesTokenCount") or 0) + thoughts  # OpenAI counts reasoning as completion
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": metadata.get("cachedContentTokenCount") or 0},
            "completion_tokens_details": {"reasoning_tokens": thoughts}}


def _completion_id(response_id: Any) -> str:
    return "chatcmpl-" + (str(response_id) if response_id else secrets.token_hex(12))


def _finish(candidate: dict, called: bool) -> str:
    # Gemini says STOP after a function call; OpenAI says tool_calls.
    return "tool_calls" if called else _FINISH.get(_get(candidate, "finishReason"), "stop")


def _candidate_delta(candidate: dict) -> tuple[str, list[dict]]:
    """A candidate's visible text (thought parts skipped) and its function calls as OpenAI tool calls."""
    parts = (candidate.get("content") or {}).get("parts") or []
    text = "".join(p.get("text") or "" for p in parts if not p.get("thought"))
    calls = [{"id": _call_id(p), "type": "function",
              "function": {"name": _get(p, "functionCall").get("name", ""), "arguments": json.dumps(_get(p, "functionCall").get("args") or {}, ensure_ascii=False)}}
             for p in parts if _get(p, "functionCall")]
    return text, calls


def gemini_response_to_chat_completion(resp: dict, *, model: str) -> dict:
    choices = []
    for position, candidate in enumerate(resp.get("candidates") or ()):
        text, calls = _candidate_delta(candidate)
        message: dict = {"role": "assistant", "content": text or (None if calls else ""), "refusal": None}
        if calls:
            message["tool_calls"] = calls
        choices.append({"index": candidate.get("index", position), "message": message, "finish_reason": _finish(candidate, bool(calls)), "logprobs": None})
    if not choices:  # the prompt itself was blocked (promptFeedback.blockReason)
        choices.append({"index": 0, "message": {"role": "assistant", "content": "", "refusal": None}, "finish_reason": "content_filter", "logprobs": None})
    return {"id": _completion_id(_get(resp, "responseId")), "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": choices, "usage": _chat_usage(_get(resp, "usageMetadata") or {})}


async def gemini_stream_to_chat_chunks(responses: AsyncIterator[dict], *, model: str, include_usage: bool) -> AsyncIterator[dict]:
    """GenerateContentResponse objects -> `chat.completion.chunk`s. Function calls arrive whole, so each
    becomes one tool-call delta; finish reasons are sent once the stream ends (usage comes last)."""
    chunk_id, created, usage = None, int(time.time()), {}
    started: set[int] = set()
    tools: dict[int, int] = {}  # candidate index -> tool calls so far
    finish: dict[int, str] = {}

    def chunk(choices: list[dict]) -> dict:
        return {"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": choices}

    async for resp in responses:
        if "error" in resp:
            status = resp["error"].get("code") or 500
            raise UpstreamError(status, gemini_error_to_openai(status, resp))
        chunk_id = chunk_id or _completion_id(_get(resp, "responseId"))
        usage = _get(resp, "usageMetadata") or usage
        for position, candidate in enumerate(resp.get("candidates") or ()):
            index = candidate.get("index", position)
            text, calls = _candidate_delta(candidate)
            delta: dict = {}
            if index not in started:
                started.add(index)
                delta = {"role": "assistant", "content": ""}
            if text:
                delta["content"] = text
            if calls:
                delta["tool_calls"] = [{"index": tools.get(index, 0) + i, **call} for i, call in enumerate(calls)]
                tools[index] = tools.get(index, 0) + len(calls)
            if delta:
                yield chunk([{"index": index, "delta": delta, "finish_reason": None, "logprobs": None}])
            if _get(candidate, "finishReason"):
                finish[index] = _finish(candidate, False)
    chunk_id = chunk_id or _completion_id(None)
    for index in sorted(started | set(finish)):
        reason = "tool_calls" if tools.get(index) else finish.get(index, "stop")
        yield chunk([{"index": index, "delta": {}, "finish_reason": reason, "logprobs": None}])
    if include_usage:
        yield {**chunk([]), "usage": _chat_usage(usage)}


# ---- Gemini -> OpenAI chat (the Gemini endpoints on any other provider) ----

def _chat_parts(parts: list[dict]) -> list[dict]:
    out = []
    for part in parts:
        if "text" in part and not part.get("thought"):
            out.append({"type": "text", "text": part["text"]})
        elif inline := _get(part, "inlineData"):
            mime, data = _get(inline, "mimeType") or "application/octet-stream", inline.get("data", "")
            if mime.startswith("image/"):
                out.append({"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}})
            elif mime.startswith("audio/") and mime.split("/")[1] in ("wav", "mp3"):
                out.append({"type": "input_audio", "input_audio": {"data": data, "format": mime.split("/")[1]}})
            else:
                out.append({"type": "file", "file": {"filename": "file" + (mimetypes.guess_extension(mime) or ""), "file_data": f"data:{mime};base64,{data}"}})
        elif file := _get(part, "fileData"):
            out.append({"type": "image_url", "image_url": {"url": _get(file, "fileUri")}})
    return out


def gemini_to_chat_request(model: str, body: dict) -> dict:
    """A generateContent body -> `chat.completions.create` params. Function calls get ids here, and
    each functionResponse answers the oldest open call of its name. Dropped: safetySettings, topK,
    thinkingConfig, cachedContent, built-in tools (googleSearch, codeExecution)."""
    messages: list[dict] = []
    if system := _get(body, "systemInstruction"):
        text = system if isinstance(system, str) else "".join(p.get("text") or "" for p in system.get("parts") or ())
        messages.append({"role": "system", "content": text})
    open_calls: list[tuple[str, str]] = []  # (name, id) awaiting a functionResponse
    numbers = itertools.count()
    for content in body.get("contents") or ():
        parts = content.get("parts") or []
        if content.get("role") == "model":
            text = "".join(p.get("text") or "" for p in parts if not p.get("thought"))
            calls = []
            for part in (p for p in parts if _get(p, "functionCall")):
                # ids numbered, not random: the same request must translate the same (the offline model is seeded by it)
                call_id, call = _call_id(part, f"call_{next(numbers)}"), _get(part, "functionCall")
                open_calls.append((call.get("name", ""), call_id))
                calls.append({"id": call_id, "type": "function", "function": {"name": call.get("name", ""), "arguments": json.dumps(call.get("args") or {}, ensure_ascii=False)}})
            messages.append({"role": "assistant", "content": text or None, **({"tool_calls": calls} if calls else {})})
            continue
        for part in parts:
            if response := _get(part, "functionResponse"):
                name = response.get("name", "")
                match = next((c for c in open_calls if c[1].partition("_ts_")[0] == response.get("id") or (not response.get("id") and c[0] == name)),
                             (name, response.get("id") or f"call_{name}"))
                if match in open_calls:
                    open_calls.remove(match)
                messages.append({"role": "tool", "tool_call_id": match[1], "content": json.dumps(response.get("response") or {}, ensure_ascii=False)})
        if user_parts := _chat_parts(parts):
            single = len(user_parts) == 1 and user_parts[0]["type"] == "text"
            messages.append({"role": "user", "content": user_parts[0]["text"] if single else user_parts})
    params: dict = {"model": model, "messages": messages}
    tools = []
    for tool in body.get("tools") or ():
        for declaration in _get(tool, "functionDeclarations") or ():
            schema = _get(declaration, "parametersJsonSchema") or from_gemini_schema(declaration.get("parameters") or {"type": "OBJECT", "properties": {}})
            function = {"name": declaration.get("name", ""), "parameters": schema}
            if declaration.get("description"):
                function["description"] = declaration["description"]
            tools.append({"type": "function", "function": function})
    config = _get(_get(body, "toolConfig") or {}, "functionCallingConfig") or {}
    allowed = _get(config, "allowedFunctionNames") or []
    if tools:
        mode = config.get("mode")
        if mode == "ANY" and len(allowed) == 1:
            params["tool_choice"] = {"type": "function", "function": {"name": allowed[0]}}
        elif mode in ("ANY", "NONE", "AUTO"):
            params["tool_choice"] = {"ANY": "required", "NONE": "none", "AUTO": "auto"}[mode]
        if mode == "ANY" and len(allowed) > 1:  # a subset: offer only those
            tools = [t for t in tools if t["function"]["name"] in allowed]
        params["tools"] = tools
    generation = _get(body, "generationConfig") or {}
    for source, target in (("maxOutputTokens", "max_completion_tokens"), ("temperature", "temperature"), ("topP", "top_p"),
                           ("candidateCount", "n"), ("seed", "seed"), ("presencePenalty", "presence_penalty"),
                           ("frequencyPenalty", "frequency_penalty")):
        if _get(generation, source) is not None:
            params[target] = _get(generation, source)
    if stop := _get(generation, "stopSequences"):
        params["stop"] = list(stop)[:4]
    schema = _get(generation, "responseJsonSchema") or (from_gemini_schema(_get(generation, "responseSchema")) if _get(generation, "responseSchema") else None)
    if schema:
        params["response_format"] = {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
    elif _get(generation, "responseMimeType") == "application/json":
        params["response_format"] = {"type": "json_object"}
    return params


def _usage_metadata(usage: dict | None) -> dict:
    usage = usage or {}
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    out = {"promptTokenCount": usage.get("prompt_tokens") or 0, "candidatesTokenCount": (usage.get("completion_tokens") or 0) - reasoning,
           "totalTokenCount": usage.get("total_tokens") or (usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0)}
    if cached := (usage.get("prompt_tokens_details") or {}).get("cached_tokens"):
        out["cachedContentTokenCount"] = cached
    if reasoning:
        out["thoughtsTokenCount"] = reasoning
    return out


def _function_call_part(call: dict) -> dict:
    function = call.get("function") or {}
    call_id, signature = _split_id(call)
    part: dict = {"functionCall": {"name": function.get("name", ""), "args": json_object(function.get("arguments"))}}
    if call_id:
        part["functionCall"]["id"] = call_id
    if signature:
        part["thoughtSignature"] = signature
    return part


def chat_completion_to_gemini_response(completion: dict) -> dict:
    candidates = []
    for choice in completion.get("choices") or ():
        message = choice.get("message") or {}
        parts = [{"text": message["content"]}] if message.get("content") else []
        parts += [_function_call_part(call) for call in message.get("tool_calls") or ()]
        candidates.append({"content": {"role": "model", "parts": parts}, "finishReason": _FINISH_BACK.get(choice.get("finish_reason"), "STOP"),
                           "index": choice.get("index", 0)})
    return {"candidates": candidates, "usageMetadata": _usage_metadata(completion.get("usage")),
            "modelVersion": completion.get("model", ""), "responseId": str(completion.get("id", "")).removeprefix("chatcmpl-")}


async def chat_chunks_to_gemini_stream(chunks: AsyncIterator[dict]) -> AsyncIterator[dict]:
    """`chat.completion.chunk`s -> GenerateContentResponse objects: text as it comes; function calls,
    whose arguments arrive in fragments, whole in the last response with finishReason and usage."""
    calls: dict[int, dict[int, dict]] = {}  # choice index -> tool index -> {"id", "function": {...}}
    finish: dict[int, str] = {}
    usage, model, response_id = None, "", ""
    async for chunk in chunks:
        model, response_id = chunk.get("model") or model, response_id or str(chunk.get("id", "")).removeprefix("chatcmpl-")
        usage = chunk.get("usage") or usage
        candidates = []
        for choice in chunk.get("choices") or ():
            index, delta = choice.get("index", 0), choice.get("delta") or {}
            for call in delta.get("tool_calls") or ():
                slot = calls.setdefault(index, {}).setdefault(call.get("index", 0), {"id": None, "function": {"name": "", "arguments": ""}})
                slot["id"] = slot["id"] or call.get("id")
                slot["function"]["name"] += (call.get("function") or {}).get("name") or ""
                slot["function"]["arguments"] += (call.get("function") or {}).get("arguments") or ""
            if choice.get("finish_reason"):
                finish[index] = choice["finish_reason"]
            if text := delta.get("content") or delta.get("refusal"):
                candidates.append({"content": {"role": "model", "parts": [{"text": text}]}, "index": index})
        if candidates:
            yield {"candidates": candidates, "modelVersion": model, "responseId": response_id}
    last = [{"content": {"role": "model", "parts": [_function_call_part(calls[index][i]) for i in sorted(calls.get(index, {}))]},
             "finishReason": _FINISH_BACK.get(finish.get(index), "STOP"), "index": index} for index in sorted(set(finish) | set(calls) or {0})]
    yield {"candidates": last, "usageMetadata": _usage_metadata(usage), "modelVersion": model, "responseId": response_id}


# ---- errors ----

def openai_error_to_gemini(status: int, body: Any) -> dict:
    return {"error": {"code": status, "message": error_message(body), "status": _STATUS.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")}}


def gemini_error_to_openai(status: int, body: Any) -> dict:
    return openai_error(status, error_message(body))
