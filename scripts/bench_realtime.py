"""A Realtime text round trip against the streamed chat completion of the same prompt, in the same run.

    .venv/bin/python scripts/bench_realtime.py [--requests 100]

One Understudy process (`understudy serve`, offline model, SQLite) and this one. The baseline is the model
call a Realtime response makes: `POST /v1/chat/completions`, streamed (httpx, bytes as they arrive), with the
same instructions and user message. A Realtime round trip is, on one open socket: `conversation.item.create`
+ `response.create`, then the events up to `response.done`; after each round trip the item and the answer
are deleted, so every round trip sends the model the same prompt. Time to the first text delta and to the
end; sequential, alternating, `--requests` of each; medians and p90s, and their ratios.

The server's comparison reads both as they come off the wire (frames as text, like the chat bytes). The
same round trip through the official SDK's `client.realtime.connect()` is shown beside it: the SDK parses
every event into a typed model, which is the client's time, not the server's. Also the time to open a
socket (handshake + session.created) against a plain `GET /v1/models`.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import openai
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.conftest import start_server  # noqa: E402  (the same live-server helper the tests use)

KEY = "sk-bench-" + "3" * 16
MODEL = "gpt-realtime"
INSTRUCTIONS = "Answer briefly."
PROMPT = "Tell me about lighthouses on rocky coasts."
# Both sockets' session: text out, no turn detection (the round trip asks for each response).
SESSION = {"type": "realtime", "output_modalities": ["text"], "instructions": INSTRUCTIONS, "audio": {"input": {"turn_detection": None}}}


async def chat_once(client: httpx.AsyncClient) -> tuple[float, float]:
    payload = {"model": MODEL, "stream": True, "stream_options": {"include_usage": True},
               "messages": [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": PROMPT}]}
    started = time.perf_counter()
    first = None
    body = b""
    async with client.stream("POST", "/v1/chat/completions", json=payload) as response:
        async for chunk in response.aiter_bytes():
            body += chunk
            if first is None and b'"content":"' in body:
                first = time.perf_counter()
    if response.status_code != 200 or b"data: [DONE]" not in body or first is None:
        raise RuntimeError(f"chat: HTTP {response.status_code}: {body[-300:]!r}")
    return first - started, time.perf_counter() - started


async def realtime_raw_once(ws) -> tuple[float, float]:
    """The round trip on a bare socket: frames matched as text, only the ids to delete are parsed."""
    started = time.perf_counter()
    first = None
    await ws.send(json.dumps({"type": "conversation.item.create",
                              "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": PROMPT}]}}))
    await ws.send(json.dumps({"type": "response.create"}))
    user_id = None
    while True:
        frame = await ws.recv()
        if first is None and '"response.output_text.delta"' in frame:
            first = time.perf_counter()
        elif user_id is None and '"conversation.item.added"' in frame:
            user_id = json.loads(frame)["item"]["id"]
        elif '"type":"error"' in frame:
            raise RuntimeError(f"realtime: {frame}")
        elif '"response.done"' in frame:
            ended = time.perf_counter()
            answer_id = json.loads(frame)["response"]["output"][0]["id"]
            break
    for item_id in (user_id, answer_id):
        await ws.send(json.dumps({"type": "conversation.item.delete", "item_id": item_id}))
        await ws.recv()
    return first - started, ended - started


async def realtime_once(conn) -> tuple[float, float]:
    started = time.perf_counter()
    first = None
    await conn.conversation.item.create(item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": PROMPT}]})
    await conn.response.create()
    user_id = None
    async for event in conn:
        if event.type == "conversation.item.added" and user_id is None:
            user_id = event.item.id
        elif event.type == "response.output_text.delta" and first is None:
            first = time.perf_counter()
        elif event.type == "error":
            raise RuntimeError(f"realtime: {event.error}")
        elif event.type == "response.done":
            break
    ended = time.perf_counter()
    for item_id in (user_id, event.response.output[0].id):  # the same prompt next time
        await conn.conversation.item.delete(item_id=item_id)
        await conn.recv()
    return first - started, ended - started


async def open_once(sdk: openai.AsyncOpenAI, http: httpx.AsyncClient) -> tuple[float, float]:
    started = time.perf_counter()
    async with sdk.realtime.connect(model=MODEL) as conn:
        await conn.recv()
        opened = time.perf_counter() - started
    started = time.perf_counter()
    (await http.get("/v1/models")).raise_for_status()
    return opened, time.perf_counter() - started


def stats(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(values), ordered[int(0.9 * (len(ordered) - 1))]


async def bench(url: str, requests: int) -> None:
    # One SDK client for every socket: making a client (its HTTP pool, an SSL context) costs more than a
    # socket's handshake and is not the server's time.
    sdk = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=KEY)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as http:
        async with sdk.realtime.connect(model=MODEL) as conn:
            await conn.recv()
            await conn.session.update(session=SESSION)
            await conn.recv()
            ws_url = url.replace("http", "ws", 1) + f"/v1/realtime?model={MODEL}"
            async with websockets.connect(ws_url, additional_headers={"Authorization": f"Bearer {KEY}"}) as ws:
                await ws.recv()
                await ws.send(json.dumps({"type": "session.update", "session": SESSION}))
                await ws.recv()
                for _ in range(5):  # warm-up
                    await chat_once(http)
                    await realtime_raw_once(ws)
                    await realtime_once(conn)
                chat, raw, realtime = [], [], []
                for _ in range(requests):
                    chat.append(await chat_once(http))
                    raw.append(await realtime_raw_once(ws))
                    realtime.append(await realtime_once(conn))
        opens = [await open_once(sdk, http) for _ in range(max(10, requests // 5))]
    print(f"{requests} round trips each, sequential, offline model\n")
    print(f"{'':<40}{'median':>10}{'p90':>10}")
    rows = [("first text delta", 0), ("end (response.done / [DONE])", 1)]
    for name, index in rows:
        c, w, r = (stats([x[index] for x in runs]) for runs in (chat, raw, realtime))
        print(f"{'chat stream: ' + name:<40}{c[0] * 1000:8.2f}ms{c[1] * 1000:8.2f}ms")
        print(f"{'realtime:    ' + name:<40}{w[0] * 1000:8.2f}ms{w[1] * 1000:8.2f}ms")
        print(f"{'ratio realtime / chat':<40}{w[0] / c[0]:9.2f}x{w[1] / c[1]:9.2f}x")
        print(f"{'realtime through the SDK (parsed)':<40}{r[0] * 1000:8.2f}ms{r[1] * 1000:8.2f}ms\n")
    o, g = stats([x[0] for x in opens]), stats([x[1] for x in opens])
    print(f"{'open a socket (to session.created)':<40}{o[0] * 1000:8.2f}ms{o[1] * 1000:8.2f}ms")
    print(f"{'GET /v1/models':<40}{g[0] * 1000:8.2f}ms{g[1] * 1000:8.2f}ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-realtime-"))
    server = start_server(data_dir)
    try:
        asyncio.run(bench(server.url, args.requests))
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
