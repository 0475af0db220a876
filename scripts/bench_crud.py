"""Requests/s of Understudy's Files API against a bare Litestar app, measured in the same run.

    .venv/bin/python scripts/bench_crud.py [--seconds 8] [--connections 32] [--big-mib 0]

Both servers run as one uvicorn process each (same loop, same HTTP parser); the load generator is
`wrk` on loopback (apt-get install wrk). Prints each endpoint's rate as a ratio to the bare app's
(targets: retrieve and list >= 0.5, an offline chat completion >= 0.35), then streams a 1 GiB file through POST /v1/files and through
the Uploads API and reports the server's peak memory growth (target: < 64 MiB).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import openai
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.conftest import free_port, start_server  # noqa: E402  (the same live-server helper the tests use)

KEY = "sk-bench-" + "0" * 16
BOUNDARY = "benchboundary7MA4YWxkTrZu0gW"


def start_bare() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "scripts.bench_bare_app:app", "--port", str(port), "--log-level", "warning", "--no-access-log"],
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(url + "/v1/files/x", timeout=1)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("bare app did not start")


def wrk(url: str, seconds: int, connections: int, lua: str | None = None, key: str = KEY) -> float:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-H", f"Authorization: Bearer {key}"]
    if lua:
        cmd += ["-s", lua]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        raise RuntimeError(f"{url}: {non_2xx.group(1)} error responses\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def post_script(tmp: Path) -> str:
    """A wrk Lua script that POSTs a multipart body: a purpose field and a 1 KiB file."""
    crlf = "\\r\\n"  # Lua string escapes
    body = crlf.join([
        f"--{BOUNDARY}", 'Content-Disposition: form-data; name=\\"purpose\\"', "", "assistants",
        f"--{BOUNDARY}", 'Content-Disposition: form-data; name=\\"file\\"; filename=\\"bench.txt\\"',
        "Content-Type: text/plain", "", "x" * 1024, f"--{BOUNDARY}--", "",
    ])
    path = tmp / "post.lua"
    path.write_text(
        'wrk.method = "POST"\n'
        f'wrk.headers["Content-Type"] = "multipart/form-data; boundary={BOUNDARY}"\n'
        f'wrk.body = "{body}"\n'
    )
    return str(path)


def chat_script(tmp: Path) -> str:
    """A wrk Lua script that POSTs a small chat completion request (answered by the offline model)."""
    body = '{\\"model\\": \\"gpt-4o-mini\\", \\"messages\\": [{\\"role\\": \\"user\\", \\"content\\": \\"Tell me about the harbour.\\"}]}'
    path = tmp / "chat.lua"
    path.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n' f'wrk.body = "{body}"\n')
    return str(path)


def compare(name: str, bare_url: str, real_url: str, seconds: int, connections: int, lua: str | None = None) -> float:
    wrk(bare_url, 2, connections, lua)  # warm both up
    wrk(real_url, 2, connections, lua)
    bare = wrk(bare_url, seconds, connections, lua)
    real = wrk(real_url, seconds, connections, lua)
    ratio = real / bare
    print(f"{name:<28} understudy {real:9.0f} req/s   bare {bare:9.0f} req/s   ratio {ratio:5.2f}")
    return ratio


class PeakRSS:
    """Samples a process's resident memory in a thread; `growth` is the peak over the starting value."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.start = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.start) / 2**20


def big_uploads(server, tmp: Path, size: int) -> None:
    path = tmp / "big.bin"
    with path.open("wb") as fh:
        block = os.urandom(1 << 20)
        for _ in range(size >> 20):
            fh.write(block)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, timeout=600)
    with PeakRSS(server.process.pid) as rss:
        started = time.monotonic()
        with path.open("rb") as fh:
            created = client.files.create(file=("big.bin", fh), purpose="assistants")
        elapsed = time.monotonic() - started
    assert created.bytes == size, created
    print(f"POST /v1/files {size >> 20} MiB      {elapsed:6.1f} s   server memory growth {rss.growth_mib:6.1f} MiB")
    client.files.delete(created.id)
    with PeakRSS(server.process.pid) as rss:
        started = time.monotonic()
        upload = client.uploads.upload_file_chunked(file=path, mime_type="application/octet-stream", purpose="assistants")
        elapsed = time.monotonic() - started
    assert upload.status == "completed" and upload.file.bytes == size, upload
    print(f"Uploads API {size >> 20} MiB (64 MiB parts) {elapsed:6.1f} s   server memory growth {rss.growth_mib:6.1f} MiB")
    client.files.delete(upload.file.id)
    path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--big-mib", type=int, default=1024, help="size of the large-upload check (0 to skip)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed as the load generator: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="understudy-bench-"))
    bare, bare_url = start_bare()
    server = start_server(tmp / "data", {"UNDERSTUDY_MAX_FILE_BYTES": str(4 << 30), "UNDERSTUDY_LOG_LEVEL": "warning"})
    try:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)
        ids = [client.files.create(file=(f"f{i}.txt", os.urandom(1024)), purpose="assistants").id for i in range(100)]
        print(f"wrk: 1 thread, {args.connections} connections, {args.seconds} s per run; one uvicorn process per server")
        compare("GET /v1/files/{id}", f"{bare_url}/v1/files/{ids[50]}", f"{server.url}/v1/files/{ids[50]}", args.seconds, args.connections)
        compare("GET /v1/files?limit=20", f"{bare_url}/v1/files?limit=20", f"{server.url}/v1/files?limit=20", args.seconds, args.connections)
        lua = post_script(tmp)
        compare("POST /v1/files (1 KiB)", f"{bare_url}/v1/files", f"{server.url}/v1/files", args.seconds, args.connections, lua)
        compare("POST /v1/chat/completions", f"{bare_url}/v1/chat/completions", f"{server.url}/v1/chat/completions", args.seconds, args.connections,
                chat_script(tmp))
        if args.big_mib:
            big_uploads(server, tmp, args.big_mib << 20)
    finally:
        server.stop()
        bare.send_signal(signal.SIGINT)
        bare.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
