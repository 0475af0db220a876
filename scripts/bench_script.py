"""What a scripted answer costs against the offline model's, measured in the same run on one server.

    .venv/bin/python scripts/bench_script.py [--seconds 6] [--connections 16]

Three tenants send the same non-streamed chat completion with wrk: one without rules (the offline model
answers), one whose single rule answers, and one whose answering rule comes after 99 that do not match
(each checked, as a call walks the list). Prints each scripted rate as a ratio to the offline one
(target: >= 1.0, a scripted answer costs no more than an offline one).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from scripts.bench_crud import chat_script, wrk  # noqa: E402
from tests.conftest import start_server  # noqa: E402


def add_rules(url: str, key: str, rules: list[dict]) -> None:
    response = httpx.post(f"{url}/_understudy/v1/rules", json={"rules": rules}, headers={"Authorization": f"Bearer {key}"})
    response.raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed as the load generator: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="understudy-bench-"))
    server = start_server(tmp / "data", {"UNDERSTUDY_LOG_LEVEL": "warning"})
    try:
        offline, one_rule, hundred_rules = "sk-bench-offline", "sk-bench-one-rule", "sk-bench-hundred-rules"
        answer = {"when": {"user_contains": "harbour"}, "reply": {"text": "The harbour is quiet at dawn; fishing boats leave before six."}}
        add_rules(server.url, one_rule, [answer])
        misses = [{"when": {"user_contains": f"topic {n}", "model": "gpt-4o-mini"}, "reply": "no"} for n in range(99)]
        add_rules(server.url, hundred_rules, [*misses, answer])
        url, lua = f"{server.url}/v1/chat/completions", chat_script(tmp)
        for key in (offline, one_rule, hundred_rules):
            wrk(url, 2, args.connections, lua, key)  # warm up
        base = wrk(url, args.seconds, args.connections, lua, offline)
        print(f"wrk: 1 thread, {args.connections} connections, {args.seconds} s per run; POST /v1/chat/completions")
        print(f"{'offline model':<32} {base:9.0f} req/s")
        for name, key in (("scripted, 1 rule", one_rule), ("scripted, 100th of 100 rules", hundred_rules)):
            rate = wrk(url, args.seconds, args.connections, lua, key)
            print(f"{name:<32} {rate:9.0f} req/s   ratio {rate / base:5.2f}")
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
