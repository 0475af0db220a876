"""What the latency benchmarks share: a live server on a throwaway data dir for the length of a run, and
the median / p90 line they print. (The wrk-driven ones, bench_crud and bench_script, start their own.)"""
from __future__ import annotations

import asyncio
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import start_server  # noqa: E402  (the same live-server helper the tests use)


def median_p90(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(values), ordered[int(0.9 * (len(ordered) - 1))]


def stats(name: str, values: list[float], width: int = 18) -> str:
    """`name  median … ms  p90 … ms` for durations in seconds."""
    median, p90 = median_p90(values)
    return f"{name:<{width}} median {median * 1000:8.2f} ms  p90 {p90 * 1000:8.2f} ms"


def run_on_live_server(main_async, args, name: str) -> None:
    """Runs `main_async(args, url)` against a fresh server; exits 1 when it returns errors."""
    tmp = Path(tempfile.mkdtemp(prefix=f"understudy-bench-{name}-"))
    server = start_server(tmp / "data", {"UNDERSTUDY_LOG_LEVEL": "warning"})
    try:
        errors = asyncio.run(main_async(args, server.url))
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if errors:
        print(f"\n{len(errors)} errors; the first: {errors[:3]}", file=sys.stderr)
        sys.exit(1)
