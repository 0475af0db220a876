"""Shared fixtures: a live Understudy server in its own process, driven over HTTP.

Each test gets a fresh API key, so a fresh tenant: tests see only their own objects, and tenancy
itself is exercised on every run.
"""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from tests.support import pg
from tests.support.redis_db import claim_redis_db

ROOT = Path(__file__).resolve().parent.parent
# Under CI every test must run: what needs PostgreSQL, Redis, S3, npm or ../shared fails there instead
# of skipping, so a green CI cannot hide a service or a tool that was missing.
CI = os.environ.get("CI", "").lower() in ("true", "1")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where every test must run: {reason}"
SERVER_MAX_FILE_BYTES = 8 * 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    data_dir: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_server(data_dir: Path, env: dict[str, str] | None = None, timeout: float = 60) -> Server:
    """`understudy serve` on a free port; returns once /healthz answers 200."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / f"server-{port}.log"
    full_env = {**os.environ, "UNDERSTUDY_LOG_LEVEL": "warning", **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--data-dir", str(data_dir)],
        cwd=ROOT, env=full_env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
    )
    server = Server(process, f"http://127.0.0.1:{port}", data_dir, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"server did not become healthy:\n{server.log()}")


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    env = {"UNDERSTUDY_MAX_FILE_BYTES": str(SERVER_MAX_FILE_BYTES), "UNDERSTUDY_MAX_PART_BYTES": str(SERVER_MAX_FILE_BYTES)}
    data_dir = tmp_path_factory.mktemp("server")
    if os.environ.get("UNDERSTUDY_TEST_TEAM"):
        # The same tests against team mode: PostgreSQL, Redis, and the jobs in an arq worker process.
        with _team_backends(data_dir, env) as team_env:
            srv = start_server(data_dir, team_env)
            try:
                yield srv
            finally:
                srv.stop()
        return
    srv = start_server(data_dir, env)
    yield srv
    srv.stop()


@contextmanager
def _team_backends(data_dir: Path, env: dict[str, str]):
    """A fresh PostgreSQL database, a Redis database of its own, and one `understudy worker` (UNDERSTUDY_TEST_TEAM=1)."""
    with pg.fresh_database("understudy_team") as database_url, claim_redis_db(hours=3) as redis_url:
        team_env = {**env, "UNDERSTUDY_DATABASE_URL": database_url, "UNDERSTUDY_REDIS_URL": redis_url}
        yield from _with_worker(data_dir, team_env)


def _with_worker(data_dir: Path, team_env: dict[str, str]):
    log = (data_dir.parent / f"{data_dir.name}-worker.log").open("wb")  # beside the data dir: tests inspect what is inside
    worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker", "--data-dir", str(data_dir)], cwd=ROOT,
                              env={**os.environ, "UNDERSTUDY_LOG_LEVEL": "warning", **team_env}, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield team_env
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()


def new_key() -> str:
    return "sk-test-" + secrets.token_hex(12)


@pytest.fixture
def api_key() -> str:
    return new_key()


@pytest.fixture
def client(server, api_key) -> openai.OpenAI:
    """The official SDK pointed at the live server, as a fresh tenant."""
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=api_key, max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def http(server, api_key) -> httpx.Client:
    """Raw HTTP for what the SDK cannot send (malformed bodies, missing keys), as the same tenant."""
    with httpx.Client(base_url=f"{server.url}/v1", headers={"Authorization": f"Bearer {api_key}"}, timeout=30) as c:
        yield c


def assert_openai_error(response: httpx.Response, status: int, *, param=..., code=..., type_: str = "invalid_request_error") -> dict:
    """The response is OpenAI's error body with this status (and param/code when given)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert error["type"] == type_, error
    if param is not ...:
        assert error["param"] == param, error
    if code is not ...:
        assert error["code"] == code, error
    return error
