"""Upstream providers over real HTTP (the fake upstream on loopback), retries, streaming, the router and
its configuration."""
from __future__ import annotations

import asyncio
import base64
import json
import socket
import struct
import time
from contextlib import asynccontextmanager

import pytest
from multidict import CIMultiDict

from app.inference import http
from app.inference.base import ProviderInfo, UpstreamError
from app.inference.providers.anthropic import AnthropicProvider
from app.inference.providers.gemini import GeminiProvider
from app.inference.providers.openai_compat import OpenAICompatProvider
from app.inference.router import InferenceRouter, build_router
from app.settings import Settings
from tests.support.fake_upstream import fake_upstream, fake_upstream_server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.anyio
FAST = http.RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)
CHAT = {"model": "gpt-test", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]}


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
async def client():
    client = http.new_client()
    yield client
    await client.aclose()


@pytest.fixture
def openai(fake_upstream, client):
    return OpenAICompatProvider("up", fake_upstream.openai_url, "sk-upstream", client, retry=FAST)


@pytest.fixture
def anthropic(fake_upstream, client):
    return AnthropicProvider("claude", fake_upstream.url, "sk-ant-upstream", client, retry=FAST)


@pytest.fixture
def gemini(fake_upstream, client):
    return GeminiProvider("gem", fake_upstream.url, "goog-key", client, retry=FAST)


async def collect(stream) -> list:
    return [item async for item in stream]


def content_of(chunks: list[dict]) -> str:
    return "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c["choices"])


async def read_all(body) -> bytes:
    return b"".join([piece async for piece in body])


# ---- SSE parser and retry helpers ----

async def _feed(pieces):
    for piece in pieces:
        yield piece


SSE = b": comment\nevent: first\ndata: {\"a\": 1}\n\ndata: line1\r\ndata: line2\r\n\r\nid: 7\rretry: 5\rdata:x\r\rdata: [DONE]"


@pytest.mark.parametrize("size", [1, 2, 3, 7, len(SSE)])
async def test_iter_sse_any_chunking(size):
    pieces = [SSE[i:i + size] for i in range(0, len(SSE), size)]
    events = await collect(http.iter_sse(_feed(pieces)))
    assert events == [("first", '{"a": 1}'), ("message", "line1\nline2"), ("message", "x"), ("message", "[DONE]")]


async def test_iter_sse_is_incremental():
    release = asyncio.Event()

    async def body():
        yield b"data: one\n\n"
        await release.wait()
        yield b"data: two\n\n"

    events = http.iter_sse(body())
    assert await asyncio.wait_for(anext(events), 1) == ("message", "one")
    release.set()
    assert await collect(events) == [("message", "two")]


def test_retry_after_headers():
    assert http.retry_after(CIMultiDict({"Retry-After-Ms": "250", "retry-after": "9"})) == 0.25
    assert http.retry_after(CIMultiDict({"retry-after": "2"})) == 2.0
    assert http.retry_after(CIMultiDict({"retry-after": "soon"})) is None
    dated = http.retry_after(CIMultiDict({"retry-after": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))}))
    assert 25 < dated <= 31
    policy = http.RetryPolicy(base_delay=1, max_delay=3)
    assert [0.75 <= http.backoff(1, policy) <= 1, 1.5 <= http.backoff(2, policy) <= 2, 2.25 <= http.backoff(5, policy) <= 3] == [True] * 3


@asynccontextmanager
async def canned_upstream(answer):
    """A minimal HTTP/1.1 server on loopback for answers the fake upstream does not give: `answer(path,
    attempt)` returns the whole raw response (bytes), or None to close the connection unanswered."""
    attempts = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            attempts.append(head.split(b" ")[1].decode())
            raw = answer(attempts[-1], len(attempts))
            if raw is not None:
                writer.write(raw)
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", attempts


def raw_response(status: int, body: bytes, content_type: str = "application/json") -> bytes:
    return (f"HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n"
            f"connection: close\r\n\r\n").encode() + body


async def test_network_error_then_success_is_retried(client):
    def answer(path, attempt):
        return None if attempt == 1 else raw_response(200, b'{"ok": true}')  # the first connection is dropped

    async with canned_upstream(answer) as (url, attempts):
        response = await http.send_with_retries(client, "POST", url + "/y", content=b"{}", retry=FAST)
    assert response.status_code == 200 and response.content == b'{"ok": true}' and attempts == ["/y", "/y"]


# ---- OpenAI-compatible ----

async def test_openai_chat(openai, fake_upstream):
    completion = await openai.chat({**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"]["content"] == fake_upstream.text()
    request = fake_upstream.requests[-1]
    assert request.path == "/v1/chat/completions" and request.headers["authorization"] == "Bearer sk-upstream"
    assert request.json() == CHAT  # stream flags are not sent for a non-streamed call


async def test_openai_chat_stream(openai, fake_upstream):
    chunks = await collect(openai.chat_stream({**CHAT, "stream_options": {"include_usage": True}}))
    assert content_of(chunks) == fake_upstream.text()
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == fake_upstream.chunks
    assert fake_upstream.requests[-1].json()["stream"] is True


async def test_openai_completions_embeddings_moderations(openai, fake_upstream):
    assert (await openai.completions({"model": "m", "prompt": "hi"}))["choices"][0]["text"] == fake_upstream.text()
    chunks = await collect(openai.completions_stream({"model": "m", "prompt": "hi"}))
    assert "".join(c["choices"][0]["text"] for c in chunks) == fake_upstream.text()
    floats = await openai.embeddings({"model": "e", "input": ["a", "b"], "dimensions": 4})
    assert [len(d["embedding"]) for d in floats["data"]] == [4, 4]
    encoded = await openai.embeddings({"model": "e", "input": "a", "dimensions": 4, "encoding_format": "base64"})
    assert list(struct.unpack("<4f", base64.b64decode(encoded["data"][0]["embedding"]))) == pytest.approx(floats["data"][0]["embedding"])
    moderation = await openai.moderations({"input": "FLAG this"})
    assert moderation["results"][0]["flagged"] is True
    assert [r.path for r in fake_upstream.requests] == ["/v1/completions"] * 2 + ["/v1/embeddings"] * 2 + ["/v1/moderations"]


async def test_openai_relay_forwards_bytes_and_replaces_auth(openai, fake_upstream):
    raw = json.dumps({**CHAT, "stream": True}).encode()
    relayed = await openai.relay("POST", "/chat/completions", body=raw, headers={"content-type": "application/json", "authorization": "Bearer sk-client", "x-api-key": "client"}, stream=True)
    assert relayed.status_code == 200 and relayed.headers["content-type"].startswith("text/event-stream")
    assert "content-length" not in relayed.headers and "transfer-encoding" not in relayed.headers
    data = await read_all(relayed.body)
    assert data.endswith(b"data: [DONE]\n\n") and fake_upstream.text().split()[-1].encode() in data
    request = fake_upstream.requests[-1]
    assert request.body == raw and request.headers["authorization"] == "Bearer sk-upstream" and "x-api-key" not in request.headers


async def test_relay_passes_error_status_through(openai, fake_upstream):
    fake_upstream.fail_next(1, 400, body={"error": {"message": "bad thing", "type": "invalid_request_error", "param": "messages", "code": None}})
    relayed = await openai.relay("POST", "/chat/completions", body=b"{}", headers={}, stream=False)
    assert relayed.status_code == 400
    assert json.loads(await read_all(relayed.body))["error"]["param"] == "messages"


async def test_errors_are_openai_shaped(openai, fake_upstream):
    fake_upstream.fail_next(1, 400)
    with pytest.raises(UpstreamError) as raised:
        await openai.chat(CHAT)
    assert raised.value.status_code == 400 and len(fake_upstream.requests) == 1  # 4xx: not retried
    assert raised.value.body["error"]["message"] == "Injected failure 400." and raised.value.body["error"]["type"] == "invalid_request_error"
    fake_upstream.fail_next(1, 422, body="plain text failure")
    with pytest.raises(UpstreamError) as raised:
        await openai.chat(CHAT)
    assert raised.value.body["error"]["message"] == "plain text failure" and raised.value.native[0] == 422


# ---- retries ----

async def test_429_then_success_honours_retry_after(openai, fake_upstream):
    fake_upstream.fail_next(1, 429, retry_after=0.3)
    started = time.monotonic()
    completion = await openai.chat(CHAT)
    assert completion["choices"][0]["message"]["content"] == fake_upstream.text()
    assert 0.28 <= time.monotonic() - started < 5 and len(fake_upstream.requests) == 2


async def test_retry_after_ms_wins(openai, fake_upstream):
    fake_upstream.fail_next(2, 503, retry_after=60, retry_after_ms=100)
    started = time.monotonic()
    await openai.chat(CHAT)
    assert 0.19 <= time.monotonic() - started < 5 and len(fake_upstream.requests) == 3


async def test_too_long_retry_after_is_passed_on(openai, fake_upstream):
    fake_upstream.fail_next(1, 429, retry_after=3600)
    with pytest.raises(UpstreamError) as raised:
        await openai.chat(CHAT)
    assert raised.value.status_code == 429 and raised.value.headers["retry-after"] == "3600"
    assert raised.value.body["error"]["code"] == "rate_limit_exceeded" and len(fake_upstream.requests) == 1


@pytest.mark.parametrize("status", [500, 503])
async def test_persistent_5xx_gives_up_after_max_attempts(openai, fake_upstream, status):
    fake_upstream.fail_next(5, status)
    with pytest.raises(UpstreamError) as raised:
        await collect(openai.chat_stream(CHAT))
    assert raised.value.status_code == status and raised.value.body["error"]["type"] == "server_error"
    assert len(fake_upstream.requests) == 3


async def test_should_retry_header_is_obeyed(openai, fake_upstream):
    fake_upstream.fail_next(1, 500, headers={"x-should-retry": "false"})
    with pytest.raises(UpstreamError):
        await openai.chat(CHAT)
    assert len(fake_upstream.requests) == 1


async def test_stream_failing_before_its_first_byte_is_retried(openai, fake_upstream):
    fake_upstream.fail_next(1, 502)
    assert content_of(await collect(openai.chat_stream(CHAT))) == fake_upstream.text()
    assert len(fake_upstream.requests) == 2


async def test_dropped_json_response_is_retried(openai, fake_upstream):
    fake_upstream.drop_next(1)
    assert (await openai.chat(CHAT))["choices"][0]["message"]["content"] == fake_upstream.text()
    assert len(fake_upstream.requests) == 2


async def test_stream_dropped_midway_is_not_retried(openai, fake_upstream):
    fake_upstream.drop_next(1, after_chunks=3)
    received = []
    with pytest.raises(UpstreamError) as raised:
        async for chunk in openai.chat_stream(CHAT):
            received.append(chunk)
    assert raised.value.status_code == 502 and len(received) == 3 and len(fake_upstream.requests) == 1


async def test_unreachable_upstream(client):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    provider = AnthropicProvider("down", f"http://127.0.0.1:{port}", "k", client, retry=FAST)
    with pytest.raises(UpstreamError) as raised:
        await provider.chat(CHAT)
    assert raised.value.status_code == 502 and "down" in raised.value.body["error"]["message"]
    assert raised.value.native[1]["type"] == "error" and raised.value.native[1]["error"]["type"] == "api_error"


async def test_errors_inside_a_stream_raise(client):
    streams = {
        "/v1/chat/completions": b'data: {"choices": []}\n\ndata: {"error": {"message": "boom", "type": "server_error", "code": null}}\n\n',
        "/v1/messages": b'event: message_start\ndata: {"type": "message_start", "message": {"id": "msg_1", "model": "c", "usage": {}}}\n\n'
                        b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}\n\n',
    }

    def answer(path, attempt):
        return raw_response(200, streams[path], "text/event-stream")

    async with canned_upstream(answer) as (url, _):
        with pytest.raises(UpstreamError) as raised:
            await collect(OpenAICompatProvider("o", url + "/v1", "k", client).chat_stream(CHAT))
        assert raised.value.status_code == 500 and raised.value.body["error"]["message"] == "boom"
        with pytest.raises(UpstreamError) as raised:
            await collect(AnthropicProvider("a", url, "k", client).chat_stream({**CHAT, "model": "c"}))
        assert raised.value.status_code == 529 and raised.value.native[1]["error"]["type"] == "overloaded_error"
        assert raised.value.body["error"]["message"] == "Overloaded"


# ---- streaming is incremental, connections are pooled ----

async def test_streams_arrive_while_the_upstream_is_still_sending(openai, anthropic, gemini, fake_upstream):
    fake_upstream.chunk_delay = 0.25  # 5 chunks: the upstream needs >= 1 s

    async def first_chunk_early(stream) -> None:
        started = time.monotonic()
        chunks = [await anext(stream)]
        first_at = time.monotonic()
        chunks += await collect(stream)
        assert first_at - started < 0.5 and time.monotonic() - first_at > 0.9 and len(chunks) > 5

    async def relayed() -> None:
        response = await openai.relay("POST", "/chat/completions", body=json.dumps({**CHAT, "stream": True}).encode(), headers={}, stream=True)
        await first_chunk_early(response.body)

    await asyncio.gather(
        first_chunk_early(openai.chat_stream(CHAT)), first_chunk_early(anthropic.chat_stream({**CHAT, "model": "claude-x"})),
        first_chunk_early(gemini.chat_stream({**CHAT, "model": "gemini-x"})), relayed(),
    )
    assert len(fake_upstream.requests) == 4


async def test_one_pooled_connection_is_reused(openai, anthropic, fake_upstream):
    for _ in range(3):
        await openai.chat(CHAT)
        await collect(anthropic.chat_stream({**CHAT, "model": "claude-x"}))
    peers = {r.peer for r in fake_upstream.requests}
    assert len(fake_upstream.requests) == 6 and len(peers) == 1


# ---- Anthropic ----

async def test_anthropic_chat(anthropic, fake_upstream):
    completion = await anthropic.chat({**CHAT, "model": "claude-x", "max_tokens": 50})
    assert completion["choices"][0]["message"]["content"] == fake_upstream.text() and completion["model"] == "claude-x"
    assert completion["usage"]["completion_tokens"] == fake_upstream.chunks
    request = fake_upstream.requests[-1]
    assert request.path == "/v1/messages" and request.headers["x-api-key"] == "sk-ant-upstream"
    assert request.headers["anthropic-version"] == "2023-06-01" and "authorization" not in request.headers
    assert request.json()["system"] == "Be brief." and request.json()["max_tokens"] == 50


async def test_anthropic_stream_and_tool_calls(anthropic, fake_upstream):
    chunks = await collect(anthropic.chat_stream({**CHAT, "model": "claude-x", "stream_options": {"include_usage": True}}))
    assert content_of(chunks) == fake_upstream.text() and chunks[-1]["usage"]["completion_tokens"] == fake_upstream.chunks
    tools = [{"type": "function", "function": {"name": "echo", "parameters": {"type": "object", "properties": {"text": {"type": "string"}}}}}]
    completion = await anthropic.chat({**CHAT, "model": "claude-x", "tools": tools, "tool_choice": "required"})
    call = completion["choices"][0]["message"]["tool_calls"][0]
    assert completion["choices"][0]["finish_reason"] == "tool_calls" and json.loads(call["function"]["arguments"]) == {"text": fake_upstream.text()}
    chunks = await collect(anthropic.chat_stream({**CHAT, "model": "claude-x", "tools": tools, "tool_choice": "required"}))
    arguments = "".join(c["choices"][0]["delta"]["tool_calls"][0]["function"].get("arguments") or "" for c in chunks if c["choices"] and c["choices"][0]["delta"].get("tool_calls"))
    assert json.loads(arguments) == {"text": fake_upstream.text()}


async def test_anthropic_errors_keep_the_native_body(anthropic, fake_upstream):
    fake_upstream.fail_next(1, 404, match="/v1/messages")
    with pytest.raises(UpstreamError) as raised:
        await anthropic.chat({**CHAT, "model": "claude-x"})
    assert raised.value.status_code == 404 and raised.value.body["error"]["message"] == "Injected failure 404."
    assert raised.value.native == (404, {"type": "error", "error": {"type": "not_found_error", "message": "Injected failure 404."}})
    for call in (anthropic.embeddings({"model": "x", "input": "a"}), anthropic.moderations({"input": "a"}), collect(anthropic.completions_stream({"model": "x"}))):
        with pytest.raises(UpstreamError) as raised:
            await call
        assert raised.value.status_code == 400 and "not supported by this provider" in raised.value.body["error"]["message"]


async def test_anthropic_relay(anthropic, fake_upstream):
    raw = json.dumps({"model": "claude-x", "max_tokens": 10, "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()
    headers = {"content-type": "application/json", "anthropic-version": "2023-01-01", "anthropic-beta": "tools-2024", "x-api-key": "client-key"}
    relayed = await anthropic.relay("POST", "/v1/messages?beta=true", body=raw, headers=headers, stream=True)
    data = (await read_all(relayed.body)).decode()
    names = [line.removeprefix("event: ") for line in data.splitlines() if line.startswith("event: ")]
    assert names[:3] == ["message_start", "content_block_start", "ping"] and names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    request = fake_upstream.requests[-1]
    assert request.query == "beta=true" and request.body == raw and request.headers["x-api-key"] == "sk-ant-upstream"
    assert request.headers["anthropic-version"] == "2023-01-01" and request.headers["anthropic-beta"] == "tools-2024"
    counted = await anthropic.relay("POST", "/v1/messages/count_tokens", body=raw, headers={"content-type": "application/json"}, stream=False)
    assert json.loads(await read_all(counted.body))["input_tokens"] > 0
    assert fake_upstream.requests[-1].headers["anthropic-version"] == "2023-06-01"


# ---- Gemini ----

async def test_gemini_chat_and_stream(gemini, fake_upstream):
    completion = await gemini.chat({**CHAT, "model": "gemini-x"})
    assert completion["choices"][0]["message"]["content"] == fake_upstream.text() and completion["model"] == "gemini-x"
    request = fake_upstream.requests[-1]
    assert request.path == "/v1beta/models/gemini-x:generateContent" and request.headers["x-goog-api-key"] == "goog-key"
    assert request.json()["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    chunks = await collect(gemini.chat_stream({**CHAT, "model": "gemini-x", "stream_options": {"include_usage": True}}))
    assert content_of(chunks) == fake_upstream.text() and chunks[-1]["usage"]["completion_tokens"] == fake_upstream.chunks
    assert fake_upstream.requests[-1].path.endswith(":streamGenerateContent") and fake_upstream.requests[-1].query == "alt=sse"


async def test_gemini_embeddings_errors_and_relay(gemini, fake_upstream):
    result = await gemini.embeddings({"model": "text-embedding-004", "input": ["a", "b"], "dimensions": 4, "encoding_format": "base64"})
    assert [len(base64.b64decode(d["embedding"])) for d in result["data"]] == [16, 16]
    assert fake_upstream.requests[-1].path == "/v1beta/models/text-embedding-004:batchEmbedContents"
    with pytest.raises(UpstreamError):
        await gemini.embeddings({"model": "e", "input": [[1, 2, 3]]})
    fake_upstream.fail_next(3, 429)
    with pytest.raises(UpstreamError) as raised:
        await gemini.chat({**CHAT, "model": "gemini-x"})
    assert raised.value.status_code == 429 and raised.value.native[1]["error"]["status"] == "RESOURCE_EXHAUSTED"
    relayed = await gemini.relay("POST", "/v1beta/models/gemini-x:generateContent", body=b'{"contents": []}', headers={"x-goog-api-key": "client"}, stream=False)
    assert json.loads(await read_all(relayed.body))["candidates"][0]["content"]["parts"][0]["text"] == fake_upstream.text()
    assert fake_upstream.requests[-1].headers["x-goog-api-key"] == "goog-key"


# ---- router and configuration ----

class Stub:
    def __init__(self, name: str, kind: str = "offline") -> None:
        self.info = ProviderInfo(name, kind)
        self.closed = False

    async def close(self) -> None:
        self.closed = True


async def test_router_matching():
    offline, a, b = Stub("offline"), Stub("a", "openai"), Stub("b", "anthropic")
    router = InferenceRouter({"offline": offline, "a": a, "b": b}, [("gpt-4o", "b"), ("gpt-*", "a"), ("claude-?-x", "b"), ("*-mini", "b")])
    assert router.route("gpt-4o") is b  # exact, listed first
    assert router.route("gpt-4o-mini") is a  # first match wins over "*-mini"
    assert router.route("o4-mini") is b and router.route("claude-3-x") is b
    assert router.route("GPT-5") is offline and router.route("gpt") is offline  # case-sensitive; default
    assert router.route("gpt-4o-mini") is a and "gpt-4o-mini" in router._cache
    await router.close()
    assert offline.closed and a.closed
    with pytest.raises(ValueError, match="nope"):
        InferenceRouter({"offline": offline}, [("x", "nope")])


def test_settings_and_build_router(tmp_path, fake_upstream):
    config = tmp_path / "understudy.toml"
    config.write_text(f'''
extra_models = ["custom-1"]
[[providers]]
name = "local"
kind = "openai"
base_url = "{fake_upstream.openai_url}"
api_key_env = "LOCAL_KEY"
timeout = 5
max_retries = 0
models = ["llama*"]

[[routes]]
model = ["gpt-4o-mini", "o1"]
provider = "offline"

[[routes]]
model = "gpt-*"
provider = "local"
''')
    env = {"UNDERSTUDY_CONFIG": str(config), "UNDERSTUDY_ANTHROPIC_API_KEY": "sk-ant", "UNDERSTUDY_GEMINI_API_KEY": "g",
           "UNDERSTUDY_OPENAI_BASE_URL": "http://openai.invalid/v1", "UNDERSTUDY_OPENAI_MODELS": "ft:*, o3*",
           "UNDERSTUDY_EXTRA_MODELS": "m1, m2,", "UNDERSTUDY_UPSTREAM_MAX_RETRIES": "4"}
    settings = Settings.from_env(env)
    assert settings.extra_models == ("m1", "m2") and settings.openai_models == ("ft:*", "o3*") and settings.upstream_max_retries == 4
    assert [p["name"] for p in settings.providers] == ["local"] and len(settings.routes) == 2
    offline = Stub("offline")
    router = build_router(settings, offline, environ={"LOCAL_KEY": "sk-local"})
    kinds = {name: p.info.kind for name, p in router.providers.items()}
    assert kinds == {"offline": "offline", "local": "openai", "anthropic": "anthropic", "gemini": "gemini", "openai": "openai"}
    local = router.providers["local"]
    assert local.api_key == "sk-local" and local.retry.max_attempts == 1 and local.timeout.sock_read == 5
    assert router.providers["anthropic"].retry.max_attempts == 5 and router.providers["anthropic"].base_url == "https://api.anthropic.com"
    assert {id(p.client) for n, p in router.providers.items() if n != "offline"} == {id(router.client)}
    expect = {"gpt-4o-mini": "offline", "o1": "offline", "gpt-4.1": "local", "llama3": "local", "claude-sonnet-4-5": "anthropic",
              "gemini-2.5-pro": "gemini", "ft:gpt-4o:org": "openai", "o3-mini": "openai", "text-embedding-3-small": "offline"}
    assert {model: router.route(model).info.name for model in expect} == expect
    with pytest.raises(ValueError, match="LOCAL_KEY"):
        build_router(settings, offline, environ={})
    asyncio.run(router.close())
    assert router.client.is_closed


def test_openai_shortcut_defaults_and_validation():
    router = build_router(Settings.from_env({"UNDERSTUDY_OPENAI_BASE_URL": "http://x/v1"}), Stub("offline"))
    assert router.route("anything").info.name == "openai" and router.providers["openai"].api_key == ""
    keyed = build_router(Settings.from_env({"UNDERSTUDY_OPENAI_API_KEY": "sk"}), Stub("offline"))
    assert keyed.providers["openai"].base_url == "https://api.openai.com/v1"
    plain = build_router(Settings.from_env({}), Stub("offline"))
    assert plain.client is None and plain.route("gpt-4o").info.name == "offline"
    providers = json.dumps([{"name": "x", "kind": "openai", "base_url": "http://x/v1", "modles": ["*"]}])
    with pytest.raises(ValueError, match="modles"):
        build_router(Settings.from_env({"UNDERSTUDY_PROVIDERS": providers}), Stub("offline"))
    with pytest.raises(ValueError, match="reserved"):
        build_router(Settings(providers=[{"name": "offline", "kind": "openai"}]), Stub("offline"))


async def test_routed_end_to_end(fake_upstream):
    settings = Settings(openai_base_url=fake_upstream.openai_url, openai_api_key="sk-e2e", openai_models=("gpt-*",),
                        anthropic_api_key="sk-ant", anthropic_base_url=fake_upstream.url)
    router = build_router(settings, Stub("offline"))
    try:
        assert (await router.route("gpt-x").chat(CHAT))["choices"][0]["message"]["content"] == fake_upstream.text()
        assert content_of(await collect(router.route("claude-x").chat_stream({**CHAT, "model": "claude-x"}))) == fake_upstream.text()
        assert [r.headers.get("authorization") or r.headers.get("x-api-key") for r in fake_upstream.requests] == ["Bearer sk-e2e", "sk-ant"]
    finally:
        await router.close()
