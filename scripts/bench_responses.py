"""Streamed responses against the offline model, measured against the bare chat-completions stream in
the same run.

    .venv/bin/python scripts/bench_responses.py [--requests 100]

One Understudy process (`understudy serve`, offline model, SQLite) and this one (one httpx.AsyncClient).
The baseline is the bare model call a response makes: `POST /v1/chat/completions`, streamed, with the
same instructions and user message. A response is `POST /v1/responses` with `stream: true` (stored, the
default). For each: time to the first SSE byte, time to the first text delta (`response.output_text.delta`
or the first chat chunk with content) and time to the end (`response.completed` / `data: [DONE]`).
Sequential, alternating, `--requests` of each; medians and p90s. The difference is what the Responses
layer adds: translating the request, building the events, and writing the response and its items.
"""
from __future__ import annotations

import argparse
import statistics
import time

import httpx

from live_bench import run_on_live_server, stats  # scripts/live_bench.py: the server and the figures the benchmarks share

KEY = "sk-bench-" + "2" * 16
MODEL = "gpt-4o-mini"
INSTRUCTIONS = "Answer briefly."
PROMPT = "Tell me about lighthouses on rocky coasts."


async def timed(client: httpx.AsyncClient, url: str, payload: dict, first_text: bytes, end: bytes, errors: list[str]) -> tuple[float, float, float] | None:
    """(first byte, first text, end) in seconds."""
    started = time.perf_counter()
    first_byte = first_delta = None
    body = b""
    async with client.stream("POST", url, json=payload) as response:
        async for chunk in response.aiter_bytes():
            now = time.perf_counter()
            if first_byte is None:
                first_byte = now
            body += chunk
            if first_delta is None and first_text in body:
                first_delta = now
    finished = time.perf_counter()
    if response.status_code != 200 or end not in body or first_delta is None:
        errors.append(f"{url}: HTTP {response.status_code}: {body[-300:]!r}")
        return None
    return first_byte - started, first_delta - started, finished - started



async def main_async(args, url: str) -> list[str]:
    errors: list[str] = []
    chat_payload = {"model": MODEL, "stream": True, "messages": [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": PROMPT}]}
    response_payload = {"model": MODEL, "stream": True, "instructions": INSTRUCTIONS, "input": PROMPT}
    chat = lambda: timed(client, url + "/v1/chat/completions", chat_payload, b'"content":"', b"data: [DONE]", errors)  # noqa: E731
    responses = lambda: timed(client, url + "/v1/responses", response_payload, b"event: response.output_text.delta", b"event: response.completed", errors)  # noqa: E731
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}, timeout=60, trust_env=False) as client:
        await client.get(url + "/v1/models")
        for _ in range(10):  # warm-up: connections, code paths, the tenant row
            await chat()
            await responses()
        results: dict[str, list[tuple[float, float, float]]] = {"chat": [], "responses": []}
        for _ in range(args.requests):
            if (got := await chat()) is not None:
                results["chat"].append(got)
            if (got := await responses()) is not None:
                results["responses"].append(got)
    if not results["chat"] or not results["responses"]:
        return errors or ["no successful requests"]
    print(f"Sequential: {args.requests} of each, alternating")
    medians = {}
    for kind in ("chat", "responses"):
        label = "chat completions" if kind == "chat" else "responses"
        for index, what in enumerate(("first byte", "first text delta", "end")):
            values = [r[index] for r in results[kind]]
            medians[(kind, what)] = statistics.median(values)
            print(f"  {label:<17} {stats(what, values, 18)}")
    for what in ("first byte", "first text delta", "end"):
        print(f"  -> responses add {(medians[('responses', what)] - medians[('chat', what)]) * 1000:6.2f} ms to the {what}")
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()
    run_on_live_server(main_async, args, "responses")


if __name__ == "__main__":
    main()
