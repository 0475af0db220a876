"""What the code interpreter costs a response: the same Responses call with and without the tool, measured in
the same run against the offline model.

    .venv/bin/python scripts/bench_code_interpreter.py [--requests 30]

One Understudy process (`understudy serve`, offline model, SQLite, file-system blobs) and this one (one
httpx.AsyncClient). The baseline is `POST /v1/responses` with the prompt and no tools (one model call, a
text reply). With the tool, the same prompt asks the offline model to compute, so it makes two model calls
around one sandbox run: in a named container (its files materialised and written back each run), and with
`"container": "auto"` (a new container per response as well). Sequential, alternating, `--requests` of
each; medians and p90s, and each variant's median over the baseline's. Needs bwrap (the sandbox).
"""
from __future__ import annotations

import argparse
import statistics
import time

import httpx

from live_bench import run_on_live_server, stats  # scripts/live_bench.py: the server and the figures the benchmarks share

KEY = "sk-bench-" + "3" * 16
MODEL = "gpt-4o-mini"
PROMPT = "Calculate 17 * 23 + 4 and save it to result.txt"


async def timed(client: httpx.AsyncClient, url: str, payload: dict, errors: list[str], expect_call: bool) -> float | None:
    started = time.perf_counter()
    response = await client.post(url, json=payload)
    elapsed = time.perf_counter() - started
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    called = any(item.get("type") == "code_interpreter_call" and item.get("status") == "completed" for item in body.get("output") or ())
    if response.status_code != 200 or body.get("status") != "completed" or called != expect_call:
        errors.append(f"HTTP {response.status_code}: {response.text[-300:]}")
        return None
    return elapsed



async def main_async(args, url: str) -> list[str]:
    errors: list[str] = []
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}, timeout=120, trust_env=False) as client:
        container = (await client.post(url + "/v1/containers", json={"name": "bench"})).json()["id"]
        payloads = {
            "without the tool": ({"model": MODEL, "input": PROMPT}, False),
            "named container": ({"model": MODEL, "input": PROMPT, "tools": [{"type": "code_interpreter", "container": container}]}, True),
            "auto container": ({"model": MODEL, "input": PROMPT, "tools": [{"type": "code_interpreter", "container": "auto"}]}, True),
        }
        for _ in range(3):  # warm-up: the sandbox probe, connections, code paths
            for payload, expect in payloads.values():
                await timed(client, url + "/v1/responses", payload, errors, expect)
        if errors:
            return errors
        results: dict[str, list[float]] = {name: [] for name in payloads}
        for _ in range(args.requests):
            for name, (payload, expect) in payloads.items():
                if (got := await timed(client, url + "/v1/responses", payload, errors, expect)) is not None:
                    results[name].append(got)
    if not all(results.values()):
        return errors or ["no successful requests"]
    print(f"Sequential: {args.requests} of each, alternating (non-streamed, time to the whole Response)")
    for name, values in results.items():
        print(f"  {stats(name, values, 24)}")
    base = statistics.median(results["without the tool"])
    for name in ("named container", "auto container"):
        median = statistics.median(results[name])
        print(f"  -> {name}: {median / base:5.1f}x the call without the tool (+{(median - base) * 1000:.1f} ms)")
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    run_on_live_server(main_async, args, "code-interpreter")


if __name__ == "__main__":
    main()
