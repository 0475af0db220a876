"""A fake OpenAI / Anthropic / Gemini upstream: a real HTTP server (uvicorn) on loopback.

Why real HTTP: connection pooling, retries, incremental streaming and dropped connections only show
up on real sockets, so providers and endpoints are tested against this rather than mocked transports.

In-process (a background thread)::

    with FakeUpstream(chunks=5) as fake:            # or the `fake_upstream` fixture below
        fake.url          # http://127.0.0.1:PORT  (Anthropic/Gemini base URL)
        fake.openai_url   # http://127.0.0.1:PORT/v1 (OpenAI base URL)
        fake.fail_next(2, 429, retry_after=0.1)     # the next 2 requests fail (match="/messages" narrows)
        fake.drop_next(1, after_chunks=3)           # the next request's connection drops mid-body
        fake.requests[-1].json(), fake.requests[-1].headers["authorization"]
        fake.text()       # the reply text every endpoint sends: "tok0 tok1 ... tok{chunks-1} "
        fake.responses    # the Responses objects POST /v1/responses made, by id (GET /v1/responses/{id})

As a process (benchmarks; control over HTTP: GET /_fake/requests, POST /_fake/reset|fail|drop|config
with the same arguments as JSON)::

    python -m tests.support.fake_upstream --port 0 --chunks 200 --delay-ms 0   # prints its URL

Replies: `chunks` pieces, `chunk_delay` seconds apart when streamed (per request: x-fake-chunks and
x-fake-delay-ms headers). Given tools and a forced tool choice (OpenAI "required"/named, Anthropic
any/tool, Gemini mode ANY) the reply is one call of the first (or named) tool with {"text": text()}.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import itertools
import json
import logging
import math
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import pytest
import uvicorn


class _Drop(Exception):
    """Raised inside the app after the response started: uvicorn then closes the connection."""


def _not_a_drop(record: logging.LogRecord) -> bool:
    """Keeps uvicorn from logging the deliberate drops as application errors."""
    return not (record.exc_info and isinstance(record.exc_info[1], _Drop))


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    peer: tuple[str, int] | None = None  # the client's address: the same port means a reused connection
    at: float = field(default_factory=time.monotonic)
    finished_at: float | None = None  # when the fake sent the last byte

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Fault:
    count: int
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    match: str | None = None
    drop_after: int | None = None  # a drop instead of an error status: chunks sent before it


class FakeUpstream:
    def __init__(self, *, chunks: int = 5, chunk_delay: float = 0.0, api_key: str | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.defaults = {"chunks": chunks, "chunk_delay": chunk_delay}
        self.chunks, self.chunk_delay = chunks, chunk_delay
        self.tail_delay = 0.0  # seconds a stream stays open after its last frame before it ends (as real upstreams may)
        self.api_key = api_key  # when set, requests must carry it (Bearer, x-api-key or x-goog-api-key)
        self.requests: list[Recorded] = []
        self.responses: dict[str, dict] = {}  # made by POST /v1/responses, for GET /v1/responses/{id}
        self._ids = itertools.count()
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._socket = socket.create_server((host, port))
        self.url = f"http://{host}:{self._socket.getsockname()[1]}"
        self.openai_url = self.url + "/v1"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # ---- control ----

    def start(self) -> "FakeUpstream":
        # log_config=None: leave the host process's logging alone.
        config = uvicorn.Config(self, lifespan="off", log_config=None, access_log=False, timeout_graceful_shutdown=1)
        logging.getLogger("uvicorn.error").addFilter(_not_a_drop)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve(sockets=[self._socket])), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake upstream did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(10)
            self._server = None
        self._socket.close()

    def __enter__(self) -> "FakeUpstream":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.responses.clear()
            self._faults.clear()
        self.chunks, self.chunk_delay = self.defaults["chunks"], self.defaults["chunk_delay"]
        self.tail_delay = 0.0

    def fail_next(self, count: int = 1, status: int = 500, *, retry_after: float | None = None, retry_after_ms: float | None = None,
                  body: Any = None, match: str | None = None, headers: dict[str, str] | None = None) -> None:
        """The next `count` requests (whose path contains `match`) answer `status` with an error body in
        their protocol's shape (or `body`)."""
        extra = dict(headers or {})
        if retry_after is not None:
            extra["retry-after"] = f"{retry_after:g}"
        if retry_after_ms is not None:
            extra["retry-after-ms"] = f"{retry_after_ms:g}"
        with self._lock:
            self._faults.append(_Fault(count, status, extra, body, match))

    def drop_next(self, count: int = 1, *, after_chunks: int = 1, match: str | None = None) -> None:
        """The next `count` requests get a 200 whose connection closes after `after_chunks` stream chunks
        (a JSON reply: after half its body), without finishing the response."""
        with self._lock:
            self._faults.append(_Fault(count, match=match, drop_after=after_chunks))

    def text(self, chunks: int | None = None) -> str:
        return "".join(_piece(i) for i in range(self.chunks if chunks is None else chunks))

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.match is None or fault.match in path:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # ---- ASGI ----

    async def record(self, scope: dict, receive: Any) -> Recorded:
        """Reads a request whole and records it: for subclasses that answer some paths themselves."""
        body = await _read_body(receive)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        record = Recorded(scope["method"], scope["path"], scope["query_string"].decode(), headers, body)
        self.requests.append(record)
        return record

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        path, query = unquote(scope["path"]), scope["query_string"].decode()
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if path.startswith("/_fake/"):
            return await self._control(scope["method"], path, body, send)
        record = Recorded(scope["method"], path, query, headers, body, tuple(scope["client"]) if scope.get("client") else None)
        self.requests.append(record)
        try:
            await _Exchange(self, record, send).run()
        finally:
            record.finished_at = time.monotonic()

    async def _control(self, method: str, path: str, body: bytes, send: Any) -> None:
        args = json.loads(body or b"{}")
        action = path.removeprefix("/_fake/")
        if action == "requests":
            reply: Any = [{"method": r.method, "path": r.path, "query": r.query, "headers": r.headers, "body": r.body.decode(errors="replace"), "peer": r.peer} for r in self.requests]
        elif action == "config":
            self.chunks, self.chunk_delay = int(args.get("chunks", self.chunks)), float(args.get("chunk_delay", self.chunk_delay))
            self.defaults = {"chunks": self.chunks, "chunk_delay": self.chunk_delay}
            reply = self.defaults
        elif action in ("reset", "fail", "drop"):
            {"reset": lambda: self.reset(), "fail": lambda: self.fail_next(**args), "drop": lambda: self.drop_next(**args)}[action]()
            reply = {"ok": True}
        else:
            reply = {"error": f"unknown control {action}"}
        await _send_json(send, 200, reply)


def _piece(i: int) -> str:
    return f"tok{i} "


def _protocol(path: str) -> str:
    return "anthropic" if path.startswith("/v1/messages") else "gemini" if path.startswith("/v1beta/") else "openai"


def error_body(protocol: str, status: int, message: str) -> dict:
    """An error in each protocol's own shape."""
    if protocol == "anthropic":
        kind = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error", 429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    if protocol == "gemini":
        state = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}.get(status, "INTERNAL")
        return {"error": {"code": status, "message": message, "status": state}}
    kind = "server_error" if status >= 500 else "requests" if status == 429 else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": "rate_limit_exceeded" if status == 429 else None}}


async def _send_json(send: Any, status: int, body: Any, headers: dict[str, str] | None = None, drop: bool = False) -> None:
    raw = json.dumps(body).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    head += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": head})
    if drop:
        await send({"type": "http.response.body", "body": raw[: len(raw) // 2], "more_body": True})
        raise _Drop()
    await send({"type": "http.response.body", "body": raw})


class _Exchange:
    """One request to a model endpoint: the reply in the protocol the path implies."""

    def __init__(self, fake: FakeUpstream, record: Recorded, send: Any) -> None:
        self.fake, self.record, self.send = fake, record, send
        self.protocol = _protocol(record.path)
        self.params = record.json() if record.body else {}
        self.chunks = int(record.headers.get("x-fake-chunks", fake.chunks))
        self.delay = float(record.headers.get("x-fake-delay-ms", fake.chunk_delay * 1000)) / 1000
        self.text = fake.text(self.chunks)
        self.prompt_tokens = max(1, len(record.body) // 16)
        self.drop_after: int | None = None

    async def run(self) -> None:
        fake, record = self.fake, self.record
        if fake.api_key and fake.api_key not in (record.headers.get("x-api-key"), record.headers.get("x-goog-api-key"), record.headers.get("authorization", "").removeprefix("Bearer ")):
            return await _send_json(self.send, 401, error_body(self.protocol, 401, "Invalid API key."))
        fault = fake._take_fault(record.path)
        if fault is not None and fault.drop_after is None:
            body = fault.body if fault.body is not None else error_body(self.protocol, fault.status, f"Injected failure {fault.status}.")
            return await _send_json(self.send, fault.status, body, fault.headers)
        self.drop_after = fault.drop_after if fault else None
        path = record.path
        handler = {"/v1/chat/completions": self.chat, "/v1/completions": self.completions, "/v1/embeddings": self.embeddings,
                   "/v1/moderations": self.moderations, "/v1/messages": self.messages, "/v1/messages/count_tokens": self.count_tokens,
                   "/v1/responses": self.response, "/v1/responses/input_tokens": self.input_tokens}.get(path)
        if handler is None and path.startswith("/v1/responses/") and record.method in ("GET", "DELETE"):
            handler = self.stored_response
        if handler is None and path.startswith("/v1beta/models/") and ":" in path:
            model, action = path.removeprefix("/v1beta/models/").rsplit(":", 1)
            handler = {"generateContent": self.gemini, "streamGenerateContent": self.gemini, "batchEmbedContents": self.gemini_embed}.get(action)
            self.params.setdefault("model", model)
        if handler is None:
            return await _send_json(self.send, 404, error_body(self.protocol, 404, f"Unknown path {path}."))
        await handler()

    async def reply(self, body: dict) -> None:
        await _send_json(self.send, 200, body, drop=self.drop_after is not None)

    async def stream(self, frames: list[bytes]) -> None:
        await self.send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
        for index, frame in enumerate(frames):
            if self.drop_after is not None and index >= self.drop_after:
                raise _Drop()
            if index and self.delay:
                await asyncio.sleep(self.delay)
            await self.send({"type": "http.response.body", "body": frame, "more_body": True})
        if self.fake.tail_delay:
            await asyncio.sleep(self.fake.tail_delay)
        await self.send({"type": "http.response.body", "body": b""})

    def tool(self) -> dict | None:
        """The function to call when the request forces a tool call, else None."""
        p = self.params
        if self.protocol == "openai":
            choice, tools = p.get("tool_choice"), [t.get("function", {}) for t in p.get("tools") or ()]
            forced = choice == "required" or isinstance(choice, dict)
            name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
        elif self.protocol == "anthropic":
            choice, tools = p.get("tool_choice") or {}, p.get("tools") or []
            forced, name = choice.get("type") in ("any", "tool"), choice.get("name")
        else:
            config = (p.get("toolConfig") or {}).get("functionCallingConfig") or {}
            tools = [d for t in p.get("tools") or () for d in t.get("functionDeclarations") or ()]
            forced, name = config.get("mode") == "ANY", (config.get("allowedFunctionNames") or [None])[0]
        if not forced or not tools:
            return None
        return next((t for t in tools if t.get("name") == name), tools[0])

    def usage(self) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.chunks, "total_tokens": self.prompt_tokens + self.chunks}

    # ---- OpenAI ----

    async def chat(self) -> None:
        model, tool = self.params.get("model", ""), self.tool()
        arguments = json.dumps({"text": self.text})
        base = {"id": "chatcmpl-fake", "created": int(time.time()), "model": model, "system_fingerprint": "fp_fake"}
        # asked for audio: an audio reply with an id (a later assistant turn may name it: {"audio": {"id"}})
        audio = ({"id": f"audio_fake{next(self.fake._ids)}", "data": "", "expires_at": int(time.time()) + 3600, "transcript": self.text}
                 if "audio" in (self.params.get("modalities") or ()) else None)
        if not self.params.get("stream"):
            message: dict = {"role": "assistant", "content": None if tool else self.text, "refusal": None}
            if audio:
                message["audio"] = audio
            if tool:
                message["tool_calls"] = [{"id": "call_fake", "type": "function", "function": {"name": tool["name"], "arguments": arguments}}]
            choice = {"index": 0, "message": message, "finish_reason": "tool_calls" if tool else "stop", "logprobs": None}
            return await self.reply({**base, "object": "chat.completion", "choices": [choice], "usage": self.usage()})

        def chunk(delta: dict, finish: str | None = None) -> dict:
            return {**base, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
        if tool:
            pieces = [arguments[i * len(arguments) // self.chunks:(i + 1) * len(arguments) // self.chunks] for i in range(self.chunks)]
            deltas = [{"tool_calls": [{"index": 0, "id": "call_fake", "type": "function", "function": {"name": tool["name"], "arguments": ""}}]}]
            deltas += [{"tool_calls": [{"index": 0, "function": {"arguments": piece}}]} for piece in pieces]
        else:
            deltas = [{"content": _piece(i)} for i in range(self.chunks)]
        events = [chunk({"role": "assistant", "content": None if tool else "", **({"audio": audio} if audio else {})})] + [chunk(d) for d in deltas]
        events.append(chunk({}, "tool_calls" if tool else "stop"))
        if (self.params.get("stream_options") or {}).get("include_usage"):
            events.append({**base, "object": "chat.completion.chunk", "choices": [], "usage": self.usage()})
        await self.stream([b"data: " + json.dumps(e).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"])

    async def completions(self) -> None:
        base = {"id": "cmpl-fake", "object": "text_completion", "created": int(time.time()), "model": self.params.get("model", "")}
        if not self.params.get("stream"):
            return await self.reply({**base, "choices": [{"text": self.text, "index": 0, "logprobs": None, "finish_reason": "stop"}], "usage": self.usage()})
        events = [{**base, "choices": [{"text": _piece(i), "index": 0, "logprobs": None, "finish_reason": None}]} for i in range(self.chunks)]
        events.append({**base, "choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}]})
        if (self.params.get("stream_options") or {}).get("include_usage"):
            events.append({**base, "choices": [], "usage": self.usage()})
        await self.stream([b"data: " + json.dumps(e).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"])

    async def embeddings(self) -> None:
        inputs = self.params.get("input")
        inputs = [inputs] if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)) else inputs
        dims, b64 = int(self.params.get("dimensions") or 8), self.params.get("encoding_format") == "base64"
        data = []
        for index, item in enumerate(inputs):
            vector = vector_for(json.dumps(item), dims)
            data.append({"object": "embedding", "index": index, "embedding": base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode() if b64 else vector})
        await self.reply({"object": "list", "data": data, "model": self.params.get("model", ""), "usage": {"prompt_tokens": self.prompt_tokens, "total_tokens": self.prompt_tokens}})

    async def moderations(self) -> None:
        inputs = self.params.get("input")
        categories = ["harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent", "self-harm",
                      "self-harm/intent", "self-harm/instructions", "sexual", "sexual/minors", "violence", "violence/graphic"]
        results = []
        for item in [inputs] if isinstance(inputs, str) else inputs or []:
            flagged = "FLAG" in json.dumps(item)
            results.append({"flagged": flagged, "categories": {c: flagged and c == "violence" for c in categories},
                            "category_scores": {c: 0.9 if flagged and c == "violence" else 0.001 for c in categories},
                            "category_applied_input_types": {c: ["text"] for c in categories}})
        await self.reply({"id": "modr-fake", "model": self.params.get("model") or "omni-moderation-latest", "results": results})

    async def response(self) -> None:
        """A Responses API answer: one assistant message with text() (streamed: OpenAI's event sequence)."""
        number = next(self.fake._ids)
        response_id, p, item_id = f"resp_fake{number}", self.params, f"msg_fake{number}"
        usage = {"input_tokens": self.prompt_tokens, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}, "output_tokens": self.chunks,
                 "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": self.prompt_tokens + self.chunks}
        part = {"type": "output_text", "text": self.text, "annotations": [], "logprobs": []}
        message = {"id": item_id, "type": "message", "status": "completed", "role": "assistant", "content": [part]}
        started = {"id": response_id, "object": "response", "created_at": int(time.time()), "status": "in_progress", "background": False,
                   "error": None, "incomplete_details": None, "instructions": p.get("instructions"), "max_output_tokens": p.get("max_output_tokens"),
                   "model": p.get("model", ""), "output": [], "parallel_tool_calls": True, "previous_response_id": p.get("previous_response_id"),
                   "store": p.get("store", True), "temperature": p.get("temperature", 1.0), "text": {"format": {"type": "text"}},
                   "tool_choice": "auto", "tools": [], "top_p": p.get("top_p", 1.0), "truncation": "disabled",
                   "metadata": p.get("metadata") or {}}
        done = {**started, "status": "completed", "output": [message], "usage": usage}
        if done["store"]:
            self.fake.responses[response_id] = done
        if not p.get("stream"):
            return await self.reply(done)
        at = {"item_id": item_id, "output_index": 0, "content_index": 0}
        events = [("response.created", {"response": started}), ("response.in_progress", {"response": started}),
                  ("response.output_item.added", {"output_index": 0, "item": {**message, "status": "in_progress", "content": []}}),
                  ("response.content_part.added", {**at, "part": {**part, "text": ""}})]
        events += [("response.output_text.delta", {**at, "delta": _piece(i), "logprobs": []}) for i in range(self.chunks)]
        events += [("response.output_text.done", {**at, "text": self.text, "logprobs": []}), ("response.content_part.done", {**at, "part": part}),
                   ("response.output_item.done", {"output_index": 0, "item": message}), ("response.completed", {"response": done})]
        await self.stream([f"event: {name}\ndata: {json.dumps({'type': name, 'sequence_number': n, **data})}\n\n".encode()
                           for n, (name, data) in enumerate(events)])

    async def input_tokens(self) -> None:
        await self.reply({"object": "response.input_tokens", "input_tokens": self.prompt_tokens})

    async def stored_response(self) -> None:
        response_id = self.record.path.removeprefix("/v1/responses/")
        stored = self.fake.responses.get(response_id)
        if stored is None:
            return await _send_json(self.send, 404, error_body("openai", 404, f"Response with id '{response_id}' not found."))
        if self.record.method == "DELETE":
            del self.fake.responses[response_id]
            return await self.reply({"id": response_id, "object": "response", "deleted": True})
        await self.reply(stored)

    # ---- Anthropic ----

    async def count_tokens(self) -> None:
        await self.reply({"input_tokens": self.prompt_tokens})

    async def messages(self) -> None:
        tool, model = self.tool(), self.params.get("model", "")
        arguments = json.dumps({"text": self.text})
        usage = {"input_tokens": self.prompt_tokens, "output_tokens": self.chunks, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        message = {"id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": None, "stop_sequence": None}
        # a code-execution tool (or a container to reuse): the answer names its container
        named = self.params.get("container")
        container = None
        if named or any("code_execution" in str(t.get("type", "")) for t in self.params.get("tools") or ()):
            container = {"id": named if isinstance(named, str) else f"container_fake{next(self.fake._ids)}", "expires_at": "2099-01-01T00:00:00Z"}
            message["container"] = container
        stop = "tool_use" if tool else "end_turn"
        if not self.params.get("stream"):
            block = {"type": "tool_use", "id": "toolu_fake", "name": tool["name"], "input": {"text": self.text}} if tool else {"type": "text", "text": self.text}
            return await self.reply({**message, "content": [block], "stop_reason": stop, "usage": usage})
        if tool:
            start = {"type": "tool_use", "id": "toolu_fake", "name": tool["name"], "input": {}}
            pieces = [arguments[i * len(arguments) // self.chunks:(i + 1) * len(arguments) // self.chunks] for i in range(self.chunks)]
            deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in pieces]
        else:
            start, deltas = {"type": "text", "text": ""}, [{"type": "text_delta", "text": _piece(i)} for i in range(self.chunks)]
        events = [("message_start", {"type": "message_start", "message": {**message, "usage": {**usage, "output_tokens": 1}}}),
                  ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": start}),
                  ("ping", {"type": "ping"})]
        events += [("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": d}) for d in deltas]
        events += [("content_block_stop", {"type": "content_block_stop", "index": 0}),
                   ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None, **({"container": container} if container else {})},
                                     "usage": {"output_tokens": self.chunks}}),
                   ("message_stop", {"type": "message_stop"})]
        await self.stream([f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events])

    # ---- Gemini ----

    async def gemini(self) -> None:
        tool, model = self.tool(), self.params["model"]
        usage = {"promptTokenCount": self.prompt_tokens, "candidatesTokenCount": self.chunks, "totalTokenCount": self.prompt_tokens + self.chunks}

        def response(parts: list[dict], finish: bool) -> dict:
            candidate: dict = {"content": {"parts": parts, "role": "model"}, "index": 0}
            if finish:
                candidate["finishReason"] = "STOP"
            return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model, "responseId": "fake-response"}
        call = [{"functionCall": {"name": tool["name"], "args": {"text": self.text}}}] if tool else None
        if not self.record.path.endswith(":streamGenerateContent"):
            return await self.reply(response(call or [{"text": self.text}], True))
        if call:
            frames = [response(call, True)]
        else:
            frames = [response([{"text": _piece(i)}], i == self.chunks - 1) for i in range(self.chunks)]
        await self.stream([b"data: " + json.dumps(f).encode() + b"\r\n\r\n" for f in frames])

    async def gemini_embed(self) -> None:
        embeddings = []
        for request in self.params.get("requests") or []:
            text = "".join(p.get("text", "") for p in (request.get("content") or {}).get("parts") or [])
            embeddings.append({"values": vector_for(json.dumps(text), int(request.get("outputDimensionality") or 8))})
        await self.reply({"embeddings": embeddings})


def upstream_env(providers: list[dict], routes: list[dict], **env: str) -> dict[str, str]:
    """A test server's environment routing to `providers` by `routes` and nothing else: the one-upstream
    shortcut variables are blanked whatever the machine's environment says; `env` adds more settings."""
    blanked = {f"UNDERSTUDY_{kind}_{what}": "" for kind in ("OPENAI", "ANTHROPIC", "GEMINI") for what in ("BASE_URL", "API_KEY")}
    return {"UNDERSTUDY_PROVIDERS": json.dumps(providers), "UNDERSTUDY_ROUTES": json.dumps(routes), **blanked, **env}


def vector_for(text: str, dims: int) -> list[float]:
    """A deterministic unit vector for a text (the same input always embeds the same)."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [(digest[i % 32] - 127.5) / 127.5 + i * 1e-3 for i in range(dims)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [v / norm for v in raw]


@pytest.fixture(scope="session")
def fake_upstream_server():
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def fake_upstream(fake_upstream_server):
    """The session's fake upstream, reset (requests, faults, chunk settings) for each test."""
    fake_upstream_server.reset()
    yield fake_upstream_server
    fake_upstream_server.reset()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--chunks", type=int, default=5)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--api-key")
    args = parser.parse_args()
    fake = FakeUpstream(chunks=args.chunks, chunk_delay=args.delay_ms / 1000, api_key=args.api_key, host=args.host, port=args.port)
    print(fake.url, flush=True)
    config = uvicorn.Config(fake, lifespan="off", log_level="critical", access_log=False, timeout_graceful_shutdown=1)
    uvicorn.Server(config).run(sockets=[fake._socket])


if __name__ == "__main__":
    main()


async def _read_body(receive: Any) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return bytes(body)
