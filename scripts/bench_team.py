#!/usr/bin/env python3
"""Team mode scaling on this machine: the same topology `make team` starts (scripts/team.py), measured
with 1 and 2 API processes, and 1 and 2 workers, in the same run.

    .venv/bin/python scripts/bench_team.py [--seconds 5] [--connections 32] [--runs 300] [--rounds 2]

One team (2 API processes, 2 workers) plus one more lone API process against the same backends:
- requests/s of GET /v1/files/{id} and of offline POST /v1/chat/completions (`wrk` on loopback,
  apt-get install wrk) on the lone process's port, then on the team's (2 processes), alternately;
- job throughput: Assistants runs (create-and-run, offline model) queued while the workers are stopped
  (SIGSTOP while the queue is empty), then completed per second by 1 worker, or by 2, alternately.

Prints the figures and their ratios; asserts nothing about time. On a 2-core machine every process
(API, workers, PostgreSQL, Redis, S3, wrk itself) shares the same two cores, so 2x is out of reach: the
ratios say how much of the second process's core the topology turns into throughput.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench_crud import KEY, wrk  # noqa: E402  (the same wrk driver and key; scripts/ is on sys.path when run)
from tests.conftest import free_port  # noqa: E402
from tests.support import pg  # noqa: E402
from tests.support.redis_db import claim_redis_db  # noqa: E402  (a Redis database no test session is using)

@contextmanager
def team(api_workers: int = 2, workers: int = 2):
    """scripts/team.py with a fresh PostgreSQL database, a Redis database of its own and a temp data dir."""
    with pg.fresh_database("understudy_bench") as database_url, tempfile.TemporaryDirectory(prefix="bench-team-") as tmp, \
            claim_redis_db() as redis_url:
        data_dir = Path(tmp)
        env = {**os.environ, "UNDERSTUDY_REDIS_URL": redis_url, "UNDERSTUDY_LOG_LEVEL": "warning",
               "UNDERSTUDY_DATABASE_URL": database_url,
               "UNDERSTUDY_PORT": str(free_port()), "UNDERSTUDY_DATA_DIR": str(data_dir)}
        log = (data_dir / "team.log").open("wb")
        process = subprocess.Popen([sys.executable, "scripts/team.py", "--api-workers", str(api_workers), "--workers", str(workers)],
                                   cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    state = json.loads((data_dir / "team.json").read_text())
                    if state["ready"]:
                        break
                except (OSError, ValueError):
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the team did not start:\n{(data_dir / 'team.log').read_text()[-3000:]}")
                time.sleep(0.2)
            time.sleep(2)  # the workers finish their own start-up (migrations checked, tiktoken warm)
            yield state, {k: v for k, v in env.items() if k.startswith("UNDERSTUDY_") and k not in ("UNDERSTUDY_PORT", "UNDERSTUDY_DATA_DIR")}
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def chat_lua(directory: Path) -> str:
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say something about lighthouses."}]})
    path = directory / "chat.lua"
    path.write_text(f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = {json.dumps(body)}\n')
    return str(path)


def api_rates(url: str, seconds: int, connections: int) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {KEY}"}
    file_id = httpx.post(f"{url}/v1/files", headers=headers, files={"file": ("a.txt", b"hello " * 100)},
                         data={"purpose": "assistants"}, timeout=30).json()["id"]
    with tempfile.TemporaryDirectory() as tmp:
        lua = chat_lua(Path(tmp))
        wrk(f"{url}/v1/files/{file_id}", 2, connections)  # warm both processes' connection pools
        retrieve = wrk(f"{url}/v1/files/{file_id}", seconds, connections)
        chat = wrk(f"{url}/v1/chat/completions", seconds, connections, lua)
    return {"retrieve": retrieve, "chat": chat}


async def runs_per_second(url: str, runs: int, working: list[int], stopped: list[int], in_flight: int = 32) -> float:
    """Creates `runs` runs while every worker is stopped (SIGSTOP, the queue empty: no claim is held),
    then lets the `working` ones go and times how long they take to complete them all: the workers'
    throughput, not the API's create rate."""
    headers = {"Authorization": f"Bearer {KEY}", "OpenAI-Beta": "assistants=v2"}
    async with httpx.AsyncClient(base_url=f"{url}/v1", headers=headers, timeout=60,
                                 limits=httpx.Limits(max_connections=in_flight)) as http:
        assistant = (await http.post("/assistants", json={"model": "gpt-4o-mini"})).json()["id"]
        gate = asyncio.Semaphore(in_flight)

        async def create(i: int) -> tuple[str, str]:
            async with gate:
                body = {"assistant_id": assistant, "thread": {"messages": [{"role": "user", "content": f"Question {i}: what is a harbour?"}]}}
                run = (await http.post("/threads/runs", json=body)).json()
                return run["thread_id"], run["id"]

        async def finished(thread_id: str, run_id: str) -> bool:
            status = (await http.get(f"/threads/{thread_id}/runs/{run_id}")).json()["status"]
            assert status in ("queued", "in_progress", "completed"), status
            return status == "completed"

        for pid in working + stopped:
            os.killpg(pid, signal.SIGSTOP)
        try:
            pending = list(await asyncio.gather(*(create(i) for i in range(runs))))
            started = time.perf_counter()
            for pid in working:
                os.killpg(pid, signal.SIGCONT)
            while pending:  # the oldest 16 pending each round: runs complete roughly in queue order
                head = pending[:16]
                done = await asyncio.gather(*(finished(*run) for run in head))
                pending = [run for run, ok in zip(head, done) if not ok] + pending[16:]
                if pending and not any(done):
                    await asyncio.sleep(0.02)
            return runs / (time.perf_counter() - started)
        finally:
            for pid in working + stopped:
                os.killpg(pid, signal.SIGCONT)


def main() -> None:
    from tests.conftest import start_server

    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2, help="alternating measurements per figure (best kept)")
    args = parser.parse_args()

    print(f"machine: {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}; wrk {args.connections} connections, "
          f"{args.seconds}s per figure; {args.runs} runs per job figure; best of {args.rounds} alternating rounds")
    best: dict[str, float] = {}

    def keep(name: str, value: float) -> None:
        best[name] = max(best.get(name, 0.0), value)
        print(f"  {name:<28} {value:8.1f}/s", flush=True)

    with team(2, 2) as (state, env), tempfile.TemporaryDirectory(prefix="bench-team-single-") as tmp:
        # One more API process, alone on its port, against the same PostgreSQL, Redis and S3.
        single = start_server(Path(tmp), {**env, "UNDERSTUDY_S3_ENDPOINT": state["s3_endpoint"],
                                          "UNDERSTUDY_S3_ACCESS_KEY": "understudy", "UNDERSTUDY_S3_SECRET_KEY": "understudy-team-secret"})
        try:
            for _ in range(args.rounds):
                for label, url in (("1 API process", single.url), ("2 API processes", state["url"])):
                    for name, value in api_rates(url, args.seconds, args.connections).items():
                        keep(f"{name} {label}", value)
        finally:
            single.stop()
        # 1 vs 2 workers over the same queue of runs, created beforehand.
        first, second = state["pids"]["worker-1"], state["pids"]["worker-2"]
        for _ in range(args.rounds):
            keep("runs 1 worker", asyncio.run(runs_per_second(state["url"], args.runs, [first], [second])))
            keep("runs 2 workers", asyncio.run(runs_per_second(state["url"], args.runs, [first, second], [])))

    print()
    for name, one, two, unit in (("file retrieve", "retrieve 1 API process", "retrieve 2 API processes", "req/s"),
                                 ("chat completions", "chat 1 API process", "chat 2 API processes", "req/s"),
                                 ("runs completed", "runs 1 worker", "runs 2 workers", "runs/s")):
        scale = "2 vs 1 workers" if name.startswith("runs") else "2 vs 1 API processes"
        print(f"{name:<17} {scale:<21} {best[two]:8.1f} / {best[one]:8.1f} {unit} = x{best[two] / best[one]:.2f}")


if __name__ == "__main__":
    main()
