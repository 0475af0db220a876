"""Batch throughput: lines/s of a chat batch run by Understudy against an upstream with a fixed latency,
against driving that same upstream directly at the same concurrency (the ceiling), in one run.

    .venv/bin/python scripts/bench_batches.py --lines 10000 --latency-ms 20 --concurrency 16

The upstream is a minimal OpenAI-compatible chat endpoint in its own process (sleeps `latency-ms`,
then answers), so neither side's client competes with it for the GIL.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COMPLETION = {
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok", "refusal": None}, "finish_reason": "stop", "logprobs": None}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10},
}


def serve_upstream(port: int, latency: float) -> None:
    import socket

    import uvicorn

    body = json.dumps(COMPLETION).encode()

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await asyncio.sleep(latency)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    sock = socket.create_server(("127.0.0.1", port))
    print(f"http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="critical", access_log=False)).run(sockets=[sock])


async def direct(url: str, lines: int, concurrency: int) -> float:
    """The ceiling: the same requests at the same concurrency, with aiohttp (the server's own upstream client)."""
    import aiohttp

    payload = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}).encode()
    headers = {"content-type": "application/json", "authorization": "Bearer sk-up"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        queue = iter(range(lines))

        async def worker():
            for _ in queue:
                async with session.post(f"{url}/v1/chat/completions", data=payload, headers=headers) as response:
                    response.raise_for_status()
                    json.loads(await response.read())

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return lines / (time.perf_counter() - started)


def via_batch(server_url: str, lines: int) -> tuple[float, dict]:
    import openai

    body = b"".join(
        json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
                    "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"hello {i}"}]}}).encode() + b"\n"
        for i in range(lines)
    )
    with openai.OpenAI(base_url=f"{server_url}/v1", api_key="sk-bench-batches", max_retries=0, timeout=60) as client:
        source = client.files.create(file=("bench.jsonl", io.BytesIO(body)), purpose="batch")
        started = time.perf_counter()
        batch = client.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h")
        while batch.status not in ("completed", "failed", "cancelled"):
            time.sleep(0.05)
            batch = client.batches.retrieve(batch.id)
        elapsed = time.perf_counter() - started
        assert batch.status == "completed", batch
        return lines / elapsed, batch.request_counts.model_dump()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=16, help="must match the batch executor's (BatchJob.concurrency)")
    parser.add_argument("--serve-upstream", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream is not None:
        return serve_upstream(args.serve_upstream, args.latency_ms / 1000)

    from tests.conftest import start_server

    upstream = subprocess.Popen([sys.executable, __file__, "--serve-upstream", "0", "--latency-ms", str(args.latency_ms)],
                                stdout=subprocess.PIPE, text=True)
    url = upstream.stdout.readline().strip()
    time.sleep(0.5)
    providers = [{"name": "bench", "kind": "openai", "base_url": f"{url}/v1", "api_key": "sk-up"}]
    env = {"UNDERSTUDY_PROVIDERS": json.dumps(providers), "UNDERSTUDY_ROUTES": json.dumps([{"model": "gpt-*", "provider": "bench"}]),
           "UNDERSTUDY_UPSTREAM_MAX_RETRIES": "0",
           **{f"UNDERSTUDY_{kind}_{what}": "" for kind in ("OPENAI", "ANTHROPIC", "GEMINI") for what in ("BASE_URL", "API_KEY")}}
    server = start_server(Path(tempfile.mkdtemp(prefix="bench-batches-")), env)
    try:
        ceiling = asyncio.run(direct(url, args.lines, args.concurrency))
        rate, counts = via_batch(server.url, args.lines)
        print(f"upstream latency {args.latency_ms:.0f} ms, concurrency {args.concurrency}, {args.lines} lines")
        print(f"direct to upstream: {ceiling:8.1f} lines/s")
        print(f"through a batch:    {rate:8.1f} lines/s  ({rate / ceiling:.0%} of direct; counts {counts})")
    finally:
        server.stop()
        upstream.terminate()
        upstream.wait()


if __name__ == "__main__":
    main()
