"""Assistants runs against the offline model, measured against the bare model call in the same run.

    .venv/bin/python scripts/bench_runs.py [--requests 100] [--concurrency 32] [--rounds 10]

One Understudy process (`understudy serve`, offline model, SQLite) and this one, the load generator (one
httpx.AsyncClient). The baseline is the bare model call a run makes: `POST /v1/chat/completions`,
streamed, with the same instructions and user message, timed to `data: [DONE]`. A run is `POST
/v1/threads/runs` (create-and-run, streamed), timed to `thread.run.completed`: it adds the thread, the
run, its step and message rows, the job and the event relay around that same model call.

Sequential: `--requests` of each, alternating. Orchestration overhead per run step = (median run time -
median model call time) / steps per run; target < 10 ms. Also a two-step run (a function call, then the
reply after `submit_tool_outputs`), timed from create to completed, against two model calls.
Concurrent: `--concurrency` workers (one thread each), `--rounds` runs each back to back: runs/s, next
to model calls/s at the same concurrency. Exits non-zero on errors only; a missed target prints
"target missed".
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import httpx

from live_bench import run_on_live_server  # scripts/live_bench.py: the server and the figures the benchmarks share

KEY = "sk-bench-" + "1" * 16
MODEL = "gpt-4o-mini"
INSTRUCTIONS = "Answer briefly."
PROMPT = "Tell me about lighthouses on rocky coasts."
TARGET_MS = 10.0
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def events(body: str) -> list[tuple[str, str]]:
    out = []
    for frame in body.split("\n\n"):
        name = data = None
        for line in frame.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        if name:
            out.append((name, data))
    return out


class Bench:
    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self.client, self.url = client, url
        self.errors: list[str] = []

    async def model_call(self, prompt: str = PROMPT) -> float | None:
        payload = {"model": MODEL, "stream": True, "messages": [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": prompt}]}
        started = time.perf_counter()
        async with self.client.stream("POST", self.url + "/v1/chat/completions", json=payload) as response:
            body = (await response.aread()).decode()
        if response.status_code != 200 or not body.endswith("data: [DONE]\n\n"):
            self.errors.append(f"chat: HTTP {response.status_code}: {body[:200]}")
            return None
        return time.perf_counter() - started

    async def run(self, assistant_id: str, prompt: str = PROMPT) -> tuple[float, list[tuple[str, str]]] | None:
        payload = {"assistant_id": assistant_id, "stream": True, "thread": {"messages": [{"role": "user", "content": prompt}]}}
        started = time.perf_counter()
        async with self.client.stream("POST", self.url + "/v1/threads/runs", json=payload) as response:
            body = (await response.aread()).decode()
        elapsed = time.perf_counter() - started
        got = events(body)
        names = [name for name, _ in got]
        if response.status_code != 200 or not names or names[-1] != "done" or names[-2] not in ("thread.run.completed", "thread.run.requires_action"):
            self.errors.append(f"run: HTTP {response.status_code}: {body[-300:]}")
            return None
        return elapsed, got

    async def tool_run(self, assistant_id: str) -> float | None:
        """Create (streamed) to requires_action, submit (streamed) to completed."""
        started = time.perf_counter()
        got = await self.run(assistant_id, "Use get_weather for Oslo.")
        if got is None:
            return None
        run = json.loads(got[1][-2][1])
        if run["status"] != "requires_action":
            self.errors.append(f"tool run ended {run['status']}")
            return None
        call = run["required_action"]["submit_tool_outputs"]["tool_calls"][0]
        payload = {"stream": True, "tool_outputs": [{"tool_call_id": call["id"], "output": "cold and clear"}]}
        async with self.client.stream("POST", f"{self.url}/v1/threads/{run['thread_id']}/runs/{run['id']}/submit_tool_outputs", json=payload) as response:
            body = (await response.aread()).decode()
        if "event: thread.run.completed" not in body:
            self.errors.append(f"submit: HTTP {response.status_code}: {body[-300:]}")
            return None
        return time.perf_counter() - started

    async def assistant(self, tools: list[dict]) -> str:
        response = await self.client.post(self.url + "/v1/assistants", json={"model": MODEL, "instructions": INSTRUCTIONS, "tools": tools})
        response.raise_for_status()
        return response.json()["id"]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.2f}"


async def main_async(args, url: str) -> list[str]:
    headers = {"Authorization": f"Bearer {KEY}", "OpenAI-Beta": "assistants=v2"}
    limits = httpx.Limits(max_connections=args.concurrency * 2 + 8, max_keepalive_connections=args.concurrency * 2 + 8)
    async with httpx.AsyncClient(headers=headers, timeout=60, limits=limits, trust_env=False) as client:
        bench = Bench(client, url)
        plain = await bench.assistant([])
        tooled = await bench.assistant([WEATHER])
        await client.get(url + "/v1/models")
        for _ in range(10):  # warm-up: connections, code paths, the tenant row
            await bench.model_call()
            await bench.run(plain)

        print(f"Sequential: {args.requests} of each, alternating")
        calls, runs, tools, double = [], [], [], []
        for _ in range(args.requests):
            if (t := await bench.model_call()) is not None:
                calls.append(t)
            if (got := await bench.run(plain)) is not None:
                runs.append(got[0])
        for _ in range(max(args.requests // 4, 5)):
            if (t := await bench.tool_run(tooled)) is not None:
                tools.append(t)
            a, b = await bench.model_call("Use get_weather for Oslo."), await bench.model_call()
            if a is not None and b is not None:
                double.append(a + b)
        if not calls or not runs or not tools or not double:
            return bench.errors or ["no successful requests"]
        call, run = statistics.median(calls), statistics.median(runs)
        print(f"  model call (chat stream)  median {ms(call)} ms  p90 {ms(sorted(calls)[int(0.9 * (len(calls) - 1))])} ms")
        print(f"  run, 1 step               median {ms(run)} ms  p90 {ms(sorted(runs)[int(0.9 * (len(runs) - 1))])} ms")
        one = run - call
        print(f"  -> orchestration overhead per step {one * 1000:.2f} ms (target < {TARGET_MS:g} ms: "
              f"{'target met' if one * 1000 < TARGET_MS else 'target missed'})")
        two = (statistics.median(tools) - statistics.median(double)) / 2
        print(f"  run, 2 steps (function call + submit + reply) median {ms(statistics.median(tools))} ms vs two model calls {ms(statistics.median(double))} ms"
              f"\n  -> overhead per step {two * 1000:.2f} ms (target < {TARGET_MS:g} ms: {'target met' if two * 1000 < TARGET_MS else 'target missed'})")

        print(f"\nConcurrent: {args.concurrency} workers, {args.rounds} each")
        rates = {}
        for name, action in (("model calls", lambda: bench.model_call()), ("runs", lambda: bench.run(plain))):
            done = 0

            async def worker():
                nonlocal done
                for _ in range(args.rounds):
                    if await action() is not None:
                        done += 1

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(args.concurrency)))
            rates[name] = done / (time.perf_counter() - started)
            print(f"  {name:<12} {done:5d} in {done / rates[name]:6.2f} s: {rates[name]:7.1f}/s")
        print(f"  runs completed per second: {rates['runs']:.1f} ({rates['runs'] / rates['model calls']:.2f} of the bare model calls' rate)")
        return bench.errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    run_on_live_server(main_async, args, "runs")


if __name__ == "__main__":
    main()
