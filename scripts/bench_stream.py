"""Streamed chat completions fetched directly from the fake upstream and through Understudy's relay, same run.

    .venv/bin/python scripts/bench_stream.py [--requests 200] [--concurrency 64] [--rounds 20] [--chunks 200] [--store]

Three processes: the fake upstream (tests/support/fake_upstream.py, `--chunks` content chunks per stream,
no delay), Understudy (`understudy serve`, routing gpt-* to the fake as an OpenAI-compatible upstream)
and this one, the load generator: one httpx.AsyncClient (HTTP/1.1, keep-alive, a connection per
concurrent stream, uvloop when installed). Each stream is `POST /v1/chat/completions`, `stream: true`,
gpt-4o-mini; Understudy relays the upstream's bytes as they arrive.

Sequential: `--requests` streams per target, alternating direct / through Understudy. Time to first byte
(first body byte after the request was sent) and total time (to `data: [DONE]`), medians and p90.
Target: added TTFB median < 2 ms. Concurrent: `--concurrency` streams at once, each worker running
`--rounds` streams back to back per target, in halves ordered direct, Understudy, Understudy, direct
(drift cancels). Streams/s and chunks/s; target: through Understudy >= 0.8 of direct.

Also printed, to read the figures: Understudy's CPU time per relayed stream (less sensitive to other
load than wall time), each process's CPU share during the concurrent runs (which one is the bottleneck),
and body pieces per stream as the client receives them (one per upstream HTTP chunk when nothing is
coalesced). All three processes share the machine: with few CPUs the ratio measures the machine too.

Every stream is checked: 200, ends with `data: [DONE]`, as many chunks as the direct stream, and
(sequential) the same bytes apart from `created`. `--store` adds an extra, labelled measurement of
`store: true`, which is not relayed but takes the typed path. Exits non-zero on errors only; a missed
target prints "target missed".
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.conftest import start_server  # noqa: E402  (the same live-server helper the tests use)

KEY = "sk-bench-" + "0" * 16  # the client's key for Understudy (open mode: any sk- key is a tenant)
UPSTREAM_KEY = "sk-upstream-bench"  # the fake's key; Understudy sends its own, the client never sees it
MODEL = "gpt-4o-mini"
TTFB_TARGET_MS = 2.0
RATIO_TARGET = 0.8
KEEPALIVE_EXPIRY = 1.0  # seconds, the bench client's
_CREATED = re.compile(rb'"created": ?\d+')


def start_fake(chunks: int) -> tuple[subprocess.Popen, str]:
    """The fake upstream as its own process (its own GIL); it prints its URL once listening."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_upstream", "--port", "0", "--chunks", str(chunks), "--delay-ms", "0", "--api-key", UPSTREAM_KEY],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise RuntimeError(f"the fake upstream did not start (printed {url!r})")
    for _ in range(200):
        try:
            httpx.post(url + "/_fake/reset", timeout=1)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("the fake upstream does not answer")


@dataclass
class Target:
    name: str
    url: str
    headers: dict[str, str]
    body: bytes
    reference: bytes | None = None  # the direct stream's bytes, `created` blanked
    chunks: int | None = None  # chunks per stream (data frames before [DONE])
    errors: list[str] = field(default_factory=list)


@dataclass
class Sample:
    ttfb: float
    total: float
    pieces: int  # body pieces httpx yielded: one per HTTP chunk received (or part of one)


def check(target: Target, data: bytes, expected_chunks: int | None, reference: bytes | None) -> None:
    if not data.endswith(b"data: [DONE]\n\n"):
        target.errors.append(f"{target.name}: stream does not end with data: [DONE] (ends {data[-60:]!r})")
        return
    count = data.count(b"data: {")
    if expected_chunks is not None and count != expected_chunks:
        target.errors.append(f"{target.name}: {count} chunks, direct has {expected_chunks}")
    if reference is not None and _CREATED.sub(b'"created": 0', data) != reference:
        target.errors.append(f"{target.name}: bytes differ from the direct stream's")


async def fetch(client: httpx.AsyncClient, target: Target) -> tuple[Sample, bytes] | None:
    """One stream: (TTFB, time to [DONE]) and its bytes; None (and an error recorded) when it failed."""
    request = client.build_request("POST", target.url, content=target.body, headers=target.headers)
    try:
        started = time.perf_counter()
        response = await client.send(request, stream=True)
        try:
            if response.status_code != 200:
                await response.aread()
                target.errors.append(f"{target.name}: HTTP {response.status_code}: {response.text[:300]}")
                return None
            buffer = bytearray()
            first = done = None
            pieces = 0
            async for chunk in response.aiter_raw():
                pieces += 1
                if first is None:
                    first = time.perf_counter()
                buffer += chunk
                if done is None and buffer.endswith(b"data: [DONE]\n\n"):
                    done = time.perf_counter()
        finally:
            await response.aclose()
    except httpx.HTTPError as exc:
        target.errors.append(f"{target.name}: {type(exc).__name__}: {exc}")
        return None
    if first is None:
        target.errors.append(f"{target.name}: empty body")
        return None
    return Sample(first - started, (done or time.perf_counter()) - started, pieces), bytes(buffer)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def verdict(met: bool) -> str:
    return "target met" if met else "target missed"


class CPU:
    """CPU seconds each process used over a block (user + system)."""

    def __init__(self, procs: dict[str, psutil.Process]) -> None:
        self.procs = procs
        self.used: dict[str, float] = {name: 0.0 for name in procs}
        self.wall = 0.0

    @staticmethod
    def _seconds(proc: psutil.Process) -> float:
        t = proc.cpu_times()
        return t.user + t.system

    def __enter__(self) -> "CPU":
        self._start = {name: self._seconds(p) for name, p in self.procs.items()}
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.wall += time.perf_counter() - self._wall
        for name, p in self.procs.items():
            self.used[name] += self._seconds(p) - self._start[name]


async def sequential(client: httpx.AsyncClient, direct: Target, through: Target, requests: int, cpu: CPU,
                     same_bytes: bool = True) -> tuple[list[Sample], list[Sample]]:
    """Alternating, one stream at a time; `cpu` accumulates over the streams through Understudy only."""
    results: dict[str, list[Sample]] = {direct.name: [], through.name: []}
    for i in range(2 * requests):
        target = (direct, through)[i % 2]
        if target is through:
            with cpu:
                got = await fetch(client, target)
        else:
            got = await fetch(client, target)
        if got is None:
            continue
        sample, data = got
        results[target.name].append(sample)
        check(target, data, direct.chunks, direct.reference if target is through and same_bytes else None)
    return results[direct.name], results[through.name]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.2f}"


def report_sequential(label: str, direct: list[Sample], through: list[Sample], cpu: CPU) -> None:
    if not direct or not through:
        print(f"  {label}: no successful streams")
        return
    for name, samples in (("direct", direct), ("understudy", through)):
        ttfb, total = [s.ttfb for s in samples], [s.total for s in samples]
        print(f"  {name:<11} n={len(samples):<4} TTFB median {ms(statistics.median(ttfb))} ms  p90 {ms(pct(ttfb, 0.9))} ms"
              f"   total median {ms(statistics.median(total))} ms  p90 {ms(pct(total, 0.9))} ms"
              f"   pieces/stream {statistics.mean(s.pieces for s in samples):5.1f}")
    added_ttfb = statistics.median(s.ttfb for s in through) - statistics.median(s.ttfb for s in direct)
    added_total = statistics.median(s.total for s in through) - statistics.median(s.total for s in direct)
    print(f"  {label}: added TTFB median {added_ttfb * 1000:.2f} ms (target < {TTFB_TARGET_MS:g} ms: {verdict(added_ttfb * 1000 < TTFB_TARGET_MS)})"
          f"; added total median {added_total * 1000:.2f} ms; Understudy CPU {cpu.used['understudy'] / len(through) * 1000:.2f} ms/stream")


async def concurrent_run(client: httpx.AsyncClient, target: Target, concurrency: int, rounds: int, cpu: CPU) -> list[Sample]:
    samples: list[Sample] = []

    async def worker() -> None:
        for _ in range(rounds):
            got = await fetch(client, target)
            if got is not None:
                samples.append(got[0])
                check(target, got[1], target.chunks, None)

    with cpu:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples


async def concurrent(client: httpx.AsyncClient, direct: Target, through: Target, concurrency: int, rounds: int, procs: dict) -> dict[str, tuple[list[Sample], CPU]]:
    """Halves in ABBA order; per target, the streams and the CPU each process spent meanwhile."""
    scratch = CPU(procs)
    for _ in range(2):  # warm-up: every connection open, buffers and arenas grown
        await concurrent_run(client, direct, concurrency, 1, scratch)
        await concurrent_run(client, through, concurrency, 1, scratch)
    first = max(rounds // 2, 1)
    results = {direct.name: ([], CPU(procs)), through.name: ([], CPU(procs))}
    for target, n in ((direct, first), (through, first), (through, rounds - first), (direct, rounds - first)):
        if n > 0:
            # Let the pool's idle connections expire first: httpcore's pool scans every idle connection on
            # each request (quadratically), so the other target's 64 idle ones would tax this one's requests.
            await asyncio.sleep(KEEPALIVE_EXPIRY + 0.2)
            samples, cpu = results[target.name]
            samples += await concurrent_run(client, target, concurrency, n, cpu)
    return results


def report_concurrent(label: str, results: dict, direct: Target, through: Target, chunks: int, concurrency: int) -> None:
    rates = {}
    for name in (direct.name, through.name):
        samples, cpu = results[name]
        rates[name] = len(samples) / cpu.wall if cpu.wall else 0.0
        shares = " ".join(f"{proc} {used / cpu.wall:4.0%}" for proc, used in cpu.used.items())
        pieces = statistics.mean(s.pieces for s in samples) if samples else 0
        print(f"  {name.split()[0]:<11} {len(samples):5d} streams in {cpu.wall:5.2f} s: {rates[name]:7.1f} streams/s {rates[name] * chunks:9.0f} chunks/s"
              f"   pieces/stream {pieces:5.1f}   CPU: {shares}")
    ratio = rates[through.name] / rates[direct.name] if rates[direct.name] else 0.0
    samples, cpu = results[through.name]
    per_stream = cpu.used["understudy"] / len(samples) * 1000 if samples else float("nan")
    print(f"  {label}: throughput ratio understudy/direct {ratio:.2f} at {concurrency} concurrent streams "
          f"(target >= {RATIO_TARGET:g}: {verdict(ratio >= RATIO_TARGET)}); Understudy CPU {per_stream:.2f} ms/stream")


async def run(args, fake_url: str, server, fake_proc: subprocess.Popen) -> list[str]:
    payload = {"model": MODEL, "messages": [{"role": "user", "content": "Count to two hundred."}], "stream": True}
    body = json.dumps(payload).encode()
    direct = Target("direct", fake_url + "/v1/chat/completions", {"authorization": f"Bearer {UPSTREAM_KEY}", "content-type": "application/json"}, body)
    through = Target("understudy (relay)", server.url + "/v1/chat/completions", {"authorization": f"Bearer {KEY}", "content-type": "application/json"}, body)
    stored_body = json.dumps({**payload, "store": True}).encode()
    stored = Target("understudy (store: true)", through.url, through.headers, stored_body)
    procs = {"client": psutil.Process(), "understudy": psutil.Process(server.process.pid), "fake": psutil.Process(fake_proc.pid)}
    # A short keep-alive: under uvicorn's 5 s idle timeout (never reuse a connection the server is
    # closing), and idle connections can be dropped between phases (see `concurrent`).
    pool = args.concurrency * 2 + 8
    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool, keepalive_expiry=KEEPALIVE_EXPIRY)
    async with httpx.AsyncClient(http1=True, http2=False, limits=limits, timeout=httpx.Timeout(60.0), trust_env=False) as client:
        # The direct stream sets the reference: its chunk count and bytes (`created` blanked).
        got = await fetch(client, direct)
        if got is None:
            return direct.errors
        check(direct, got[1], None, None)
        direct.chunks = got[1].count(b"data: {")
        direct.reference = _CREATED.sub(b'"created": 0', got[1])
        through.chunks = stored.chunks = direct.chunks
        print(f"each stream: {direct.chunks} chunks + [DONE], {len(got[1])} bytes\n")

        # Warm-up: one cheap authenticated route first (the tenant row), then both stream paths.
        await client.get(server.url + "/v1/models", headers=through.headers)
        for _ in range(10):  # connections, code paths, the tenant row
            await fetch(client, direct)
            await fetch(client, through)

        print(f"Sequential: {args.requests} streams each, alternating direct / through Understudy")
        cpu = CPU(procs)
        d, t = await sequential(client, direct, through, args.requests, cpu)
        report_sequential("relay", d, t, cpu)

        print(f"\nConcurrent: {args.concurrency} streams at once, {args.rounds} rounds each (ABBA halves)")
        await client.post(fake_url + "/_fake/reset")
        results = await concurrent(client, direct, through, args.concurrency, args.rounds, procs)
        report_concurrent("relay", results, direct, through, direct.chunks, args.concurrency)

        if args.store:
            print("\nExtra, NOT the relay — `store: true` takes the typed path (SSE parsed, chunks decoded, accumulated,"
                  " re-encoded; the completion stored):")
            for _ in range(2):  # a probe: a failing typed path is reported once, not once per stream
                got = await fetch(client, stored)
                if got is not None:
                    check(stored, got[1], direct.chunks, None)
                if stored.errors:
                    print(f"  store: true: not measured, a probe stream failed: {stored.errors[0]}")
                    break
            else:
                n = max(args.requests // 4, 5)
                cpu = CPU(procs)
                d, t = await sequential(client, direct, stored, n, cpu, same_bytes=False)
                report_sequential("store: true", d, t, cpu)
                await client.post(fake_url + "/_fake/reset")
                results = await concurrent(client, direct, stored, args.concurrency, max(args.rounds // 2, 2), procs)
                report_concurrent("store: true", results, direct, stored, direct.chunks, args.concurrency)
        await client.post(fake_url + "/_fake/reset")
    return direct.errors + through.errors + stored.errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="sequential streams per target")
    parser.add_argument("--concurrency", type=int, default=64, help="streams at once in the concurrent phase")
    parser.add_argument("--rounds", type=int, default=20, help="streams per concurrent worker and target")
    parser.add_argument("--chunks", type=int, default=200, help="content chunks per stream")
    parser.add_argument("--store", action="store_true",
                        help="also measure store: true (the typed path), an extra line; it needs an upstream whose completion ids differ")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="understudy-bench-stream-"))
    fake, fake_url = start_fake(args.chunks)
    server = None
    try:
        server = start_server(tmp / "data", {
            "UNDERSTUDY_OPENAI_BASE_URL": fake_url + "/v1", "UNDERSTUDY_OPENAI_API_KEY": UPSTREAM_KEY,
            "UNDERSTUDY_OPENAI_MODELS": "gpt-*", "UNDERSTUDY_LOG_LEVEL": "warning",
        })
        loop = "asyncio"
        try:
            import uvloop
            runner, loop = uvloop.run, "uvloop"
        except ImportError:
            runner = asyncio.run
        print(f"fake upstream {fake_url} (own process, {args.chunks} chunks, no delay); Understudy {server.url} "
              f"(one uvicorn process, gpt-* -> fake as OpenAI-compatible); client: one httpx.AsyncClient, HTTP/1.1 keep-alive, "
              f"{loop}, in this process; {psutil.cpu_count()} CPUs")
        if (psutil.cpu_count() or 1) < 4:
            print("note: fewer than 4 CPUs for 3 busy processes: they compete, so the ratio and TTFB include scheduling delays")
        errors = runner(run(args, fake_url, server, fake))
    finally:
        server_log = ""
        if server is not None:
            server.stop()
            server_log = server.log()
        fake.send_signal(signal.SIGTERM)
        try:
            fake.wait(10)
        except subprocess.TimeoutExpired:
            fake.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    if errors:
        distinct = list(dict.fromkeys(errors))
        print(f"\n{len(errors)} errors ({len(distinct)} distinct); the first ones:", file=sys.stderr)
        for line in distinct[:10]:
            print("  " + line, file=sys.stderr)
        causes = [line.strip(" |") for line in server_log.splitlines() if re.search(r"\w(Error|Exception): ", line)]
        if causes:
            print("Understudy's log, exception lines (last ones):", file=sys.stderr)
            for line in list(dict.fromkeys(causes))[-6:]:
                print("  " + line[:400], file=sys.stderr)
        sys.exit(1)
    print("\nall streams verified: 200, ending in data: [DONE], same chunk count as direct (sequential relay: same bytes)")


if __name__ == "__main__":
    main()
