"""app/core/sse.py over real HTTP: a tiny Litestar app on uvicorn (in a thread), read with httpx and
decoded with the official SDK's own SSE parser."""
from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import httpx
import openai
import pytest
import uvicorn
from litestar import Litestar, get, post
from litestar.params import FromQuery
from litestar.response import Stream
from openai._streaming import SSEDecoder

from app.core.sse import DONE, PING, SSEvent, sse_response
from tests.conftest import free_port

LIVENESS = 10.0
UNICODE = "héllo “quotes” 日本語 ✓ \U0001f600 \\ \" \t"


@dataclass
class Trace:
    """What happened server-side to the request carrying a `token` query parameter."""

    closed: threading.Event = field(default_factory=threading.Event)  # the producer's `finally` ran
    finished: threading.Event = field(default_factory=threading.Event)  # the ASGI app returned or raised
    error: BaseException | None = None


TRACES: dict[str, Trace] = {}


def trace(token: str) -> Trace:
    return TRACES.setdefault(token, Trace())


def traced(app):
    """ASGI wrapper: records whether the app raised (uvicorn would only log "Exception in ASGI application")."""

    async def asgi(scope, receive, send):
        token = parse_qs(scope.get("query_string", b"").decode()).get("token", [None])[0]
        try:
            await app(scope, receive, send)
        except BaseException as error:
            if token:
                trace(token).error = error
            raise
        finally:
            if token:
                trace(token).finished.set()

    return asgi


@get("/bare", sync_to_thread=False)
def bare() -> Stream:
    async def events():
        for i in range(3):
            yield SSEvent({"i": i, "text": UNICODE})
        yield DONE

    return sse_response(events())


@get("/named", sync_to_thread=False)
def named() -> Stream:
    async def events():
        yield SSEvent({"id": "run_1", "object": "thread.run"}, event="thread.run.created")
        yield SSEvent({"delta": {"content": [{"text": {"value": UNICODE}}]}}, event="thread.message.delta")
        yield SSEvent("[DONE]", event="done")

    return sse_response(events(), headers={"X-Extra": "yes"})


@get("/slow", sync_to_thread=False)
def slow(delay: FromQuery[float], ping: FromQuery[float]) -> Stream:
    async def events():
        for i in range(3):
            await asyncio.sleep(delay)
            yield SSEvent({"i": i})
        yield DONE

    return sse_response(events(), ping_interval=ping)


@get("/endless", sync_to_thread=False)
def endless(token: FromQuery[str], ping: FromQuery[float] = 0.0, quiet: FromQuery[bool] = False) -> Stream:
    """Sends one event, then either one every 20 ms or (quiet) nothing ever again."""
    closed = trace(token).closed

    async def events():
        try:
            yield SSEvent({"first": True})
            i = 0
            while True:
                if quiet:
                    await asyncio.Event().wait()
                await asyncio.sleep(0.02)
                i += 1
                yield SSEvent({"i": i})
        finally:
            closed.set()

    return sse_response(events(), ping_interval=ping or None)


@get("/either", sync_to_thread=False)
def either(stream: FromQuery[bool]) -> dict | Stream:
    """Like a stream-or-not endpoint (chat completions): the handler's own media type is JSON."""
    if not stream:
        return {"object": "chat.completion"}

    async def events():
        yield SSEvent({"object": "chat.completion.chunk"})
        yield DONE

    return sse_response(events())


@post("/v1/chat/completions", status_code=200)
async def chat_completions() -> Stream:
    async def events():
        for i, piece in enumerate(["Hel", "lo ", UNICODE]):
            await asyncio.sleep(0.05)
            yield SSEvent(
                {
                    "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                    "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                }
            )
        yield DONE

    return sse_response(events(), ping_interval=0.01)  # comments between every chunk


@pytest.fixture(scope="module")
def base_url():
    app = Litestar([bare, named, slow, endless, either, chat_completions], openapi_config=None)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(traced(app), host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + LIVENESS
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(LIVENESS)


def fetch(url: str) -> httpx.Response:
    response = httpx.get(url, timeout=LIVENESS)
    assert response.status_code == 200, response.text
    return response


def decode(raw: bytes, chunk_size: int | None = None) -> list[tuple[str | None, str]]:
    """The events as the official SDK's decoder sees them, fed whole or in small chunks."""
    size = chunk_size or len(raw) or 1
    chunks = [raw[i : i + size] for i in range(0, len(raw), size)]
    return [(sse.event, sse.data) for sse in SSEDecoder().iter_bytes(iter(chunks))]


def test_bare_data_events_then_done(base_url):
    raw = fetch(f"{base_url}/bare").content
    expected_json = json.dumps({"i": 0, "text": UNICODE}, ensure_ascii=False, separators=(",", ":"))
    assert raw.startswith(b"data: " + expected_json.encode("utf-8") + b"\n\n")
    assert raw.endswith(b"data: [DONE]\n\n")
    frames = raw.split(b"\n\n")
    assert frames[-1] == b"" and len(frames) == 5
    assert all(frame.startswith(b"data: ") and b"\n" not in frame for frame in frames[:-1])
    assert DONE.encode() == b"data: [DONE]\n\n"


def test_json_is_compact_and_utf8(base_url):
    raw = fetch(f"{base_url}/bare").content
    first = raw.split(b"\n\n")[0].removeprefix(b"data: ")
    assert b", " not in first and b'": ' not in first  # no padding after separators
    assert "日本語".encode() in first and b"\\u" not in first  # UTF-8, not \u escapes
    assert json.loads(first.decode("utf-8")) == {"i": 0, "text": UNICODE}


def test_named_events(base_url):
    raw = fetch(f"{base_url}/named").content
    assert raw.startswith(b'event: thread.run.created\ndata: {"id":"run_1","object":"thread.run"}\n\n')
    assert raw.endswith(b"event: done\ndata: [DONE]\n\n")
    assert [event for event, _ in decode(raw)] == ["thread.run.created", "thread.message.delta", "done"]


def test_headers(base_url):
    response = fetch(f"{base_url}/named")
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert response.headers["x-extra"] == "yes"
    assert "content-length" not in response.headers  # streamed


def test_a_stream_keeps_its_media_type_in_a_handler_that_may_return_json(base_url):
    streamed = fetch(f"{base_url}/either?stream=true")
    assert streamed.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert streamed.content == b'data: {"object":"chat.completion.chunk"}\n\ndata: [DONE]\n\n'
    plain = fetch(f"{base_url}/either?stream=false")
    assert plain.headers["content-type"] == "application/json"
    assert plain.json() == {"object": "chat.completion"}


@pytest.mark.parametrize("path", ["/bare", "/named"])
@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_the_sdk_decoder_reads_our_bytes_as_the_same_events(base_url, path, chunk_size):
    raw = fetch(base_url + path).content
    if path == "/bare":
        expected = [(None, json.dumps({"i": i, "text": UNICODE}, ensure_ascii=False, separators=(",", ":"))) for i in range(3)]
        expected.append((None, "[DONE]"))
    else:
        expected = [
            ("thread.run.created", '{"id":"run_1","object":"thread.run"}'),
            ("thread.message.delta", json.dumps({"delta": {"content": [{"text": {"value": UNICODE}}]}}, ensure_ascii=False, separators=(",", ":"))),
            ("done", "[DONE]"),
        ]
    assert decode(raw, chunk_size) == expected


def test_a_slow_producer_gets_pings_and_events_arrive_in_order(base_url):
    arrivals: list[bytes] = []
    with httpx.stream("GET", f"{base_url}/slow", params={"delay": 0.3, "ping": 0.05}, timeout=LIVENESS) as response:
        for chunk in response.iter_raw():
            arrivals.append(chunk)
    raw = b"".join(arrivals)
    assert raw.count(PING) >= 3  # several per 0.3 s gap at a 0.05 s interval, without asserting how many
    assert raw.replace(PING, b"") == b'data: {"i":0}\n\ndata: {"i":1}\n\ndata: {"i":2}\n\ndata: [DONE]\n\n'
    assert raw.startswith(PING)  # the first ping came before the first event
    # The SDK skips the comments.
    assert decode(raw) == [(None, '{"i":0}'), (None, '{"i":1}'), (None, '{"i":2}'), (None, "[DONE]")]


def test_a_fast_producer_gets_no_pings(base_url):
    raw = fetch(f"{base_url}/slow?delay=0&ping=5").content
    assert PING not in raw
    assert raw.endswith(b"data: [DONE]\n\n")


def test_the_openai_sdk_streams_a_chat_completion_with_pings_in_between(base_url):
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-x", max_retries=0) as client:
        stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True)
        chunks = list(stream)
    assert [c.object for c in chunks] == ["chat.completion.chunk"] * 3
    assert "".join(c.choices[0].delta.content for c in chunks) == "Hello " + UNICODE


@pytest.mark.parametrize(
    "params",
    [{"ping": 0}, {"ping": 0.01}, {"ping": 0.05, "quiet": True}, {"ping": 0, "quiet": True}],
    ids=["chatty-no-ping", "chatty-ping", "quiet-ping", "quiet-no-ping"],
)
def test_a_client_disconnect_closes_the_producer(base_url, params):
    token = uuid.uuid4().hex
    seen = trace(token)
    with httpx.stream("GET", f"{base_url}/endless", params={"token": token, **params}, timeout=LIVENESS) as response:
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data:")) == 'data: {"first":true}'
        assert not seen.closed.is_set()
    # Leaving the block closes the connection mid-stream.
    assert seen.closed.wait(LIVENESS), "the producer's finally did not run after the client went away"
    assert seen.finished.wait(LIVENESS), "the request never ended server-side"
    assert seen.error is None, f"the app raised after the disconnect: {seen.error!r}"
