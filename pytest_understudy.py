"""Understudy's pytest plugin (entry point `understudy`, offered to any suite once the project is installed).

    def test_weather(understudy):
        understudy.script.tool_call("get_weather", {"city": "Oslo"}, when_user_says="weather")
        reply = understudy.client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Oslo weather?"}])
        assert reply.choices[0].message.tool_calls[0].function.name == "get_weather"
        assert understudy.script.calls()[0]["request"]["messages"][0]["content"] == "Oslo weather?"

`understudy_server` (session) starts `understudy serve` in a subprocess on a free port with a throwaway data
dir — or uses the server at `--understudy-url` / UNDERSTUDY_TEST_URL. `understudy` (per test) is a fresh
tenant on it: its own API key, so its objects, rules and call log are its own and tests can run in parallel.

This module imports nothing of Understudy: the server runs in its own interpreter (`python -I`), so a suite
with an `app` package of its own is never handed ours.
"""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

_START_SECONDS = 60.0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("understudy", "Understudy: a local OpenAI API for tests")
    group.addoption("--understudy-url", default=os.environ.get("UNDERSTUDY_TEST_URL"),
                    help="Use the Understudy server at this URL instead of starting one (env UNDERSTUDY_TEST_URL).")


@dataclass
class UnderstudyServer:
    url: str  # e.g. http://127.0.0.1:51234 (the OpenAI base URL is url + "/v1")
    data_dir: Path | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    def new_key(self) -> str:
        """A fresh API key: a tenant of its own."""
        return "sk-understudy-test-" + secrets.token_hex(12)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_understudy(data_dir: Path, env: dict[str, str] | None = None, timeout: float = _START_SECONDS) -> UnderstudyServer:
    """`understudy serve` on a free loopback port, returned once /healthz answers."""
    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "understudy.log"
    full_env = {**os.environ, "UNDERSTUDY_LOG_LEVEL": "warning", **(env or {})}
    # -I: the server's imports come from the installed project, never from the suite's working directory.
    process = subprocess.Popen([sys.executable, "-I", "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                                "--data-dir", str(data_dir)],
                               cwd=data_dir, env=full_env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    server = UnderstudyServer(f"http://127.0.0.1:{port}", data_dir, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"understudy serve exited with {process.returncode}:\n{log_path.read_text(errors='replace')}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    process.wait()
    raise RuntimeError(f"understudy serve did not answer /healthz within {timeout:.0f} s:\n{log_path.read_text(errors='replace')}")


class Script:
    """Scripted answers and faults for one tenant, through Understudy's control API (/_understudy/v1).
    Rules are tried in the order they were added; the first that matches a model call answers it, and
    calls no rule matches go to the offline model (or are refused: `strict()`)."""

    def __init__(self, http) -> None:
        self._http = http

    def rule(self, rule: dict) -> dict:
        """Any rule, as README "Scripted answers and faults" describes it; returns it with its id."""
        return self._call("POST", "/rules", json=rule)

    def reply(self, text: str | list[str] | None = None, *, when_user_says: str | None = None, when: dict | None = None,
              times: int | None = None, **reply: Any) -> dict:
        """Answer with `text` (a list is the stream's chunks) or other reply fields (json=, refusal=,
        usage=, finish_reason=, embedding=), to calls whose last user message contains `when_user_says`."""
        if text is not None:
            reply["text"] = text
        return self.rule(self._rule({"reply": reply}, when_user_says, when, times))

    def tool_call(self, name: str, arguments: dict | None = None, *, when_user_says: str | None = None, when: dict | None = None,
                  times: int | None = None) -> dict:
        """Answer with a call of function `name` with exactly these arguments: chat tool_calls, a Responses
        function_call item, an Anthropic tool_use block, a run's requires_action."""
        call = {"name": name, "arguments": arguments or {}}
        return self.rule(self._rule({"reply": {"tool_calls": [call]}}, when_user_says, when, times))

    def fail(self, status: int | None = 500, *, times: int | None = None, when_user_says: str | None = None,
             when: dict | None = None, probability: float | None = None, seed: int | None = None, **fault: Any) -> dict:
        """Fail calls with an HTTP `status` in the endpoint's own error shape (fault fields: message=, code=,
        retry_after=), or with `status=None` and one of timeout=, cut_after=, malformed_after=."""
        if status is not None:
            fault["status"] = status
        rule = self._rule({"fault": fault}, when_user_says, when, times)
        if probability is not None:
            rule.update(probability=probability, seed=seed or 0)
        return self.rule(rule)

    def rules(self) -> list[dict]:
        return self._call("GET", "/rules")["data"]

    def clear(self) -> None:
        """Delete this tenant's rules (the call log stays: `clear_calls`)."""
        self._call("DELETE", "/rules")

    def strict(self, on: bool = True) -> dict:
        """Refuse (404 no_matching_rule) the calls no rule matches, instead of asking the offline model."""
        return self._call("POST", "/script", json={"strict": on})

    def calls(self) -> list[dict]:
        """This tenant's model calls, oldest first: endpoint, model, stream, rule_id, outcome, request."""
        return self._call("GET", "/calls")["data"]

    def clear_calls(self) -> None:
        self._call("DELETE", "/calls")

    @staticmethod
    def _rule(rule: dict, when_user_says: str | None, when: dict | None, times: int | None) -> dict:
        when = dict(when or {})
        if when_user_says is not None:
            when["user_contains"] = when_user_says
        if when:
            rule["when"] = when
        if times is not None:
            rule["times"] = times
        return rule

    def _call(self, method: str, path: str, **kwargs) -> dict:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise AssertionError(f"Understudy refused {method} /_understudy/v1{path}: {response.status_code} {response.text}")
        return response.json()


class Understudy:
    """One test's tenant: `key`, `base_url` (for OpenAI clients), `client` (openai.OpenAI), `script`."""

    def __init__(self, server: UnderstudyServer) -> None:
        import httpx

        self.server = server
        self.key = server.new_key()
        self.base_url = f"{server.url}/v1"
        self._http = httpx.Client(base_url=f"{server.url}/_understudy/v1", headers={"Authorization": f"Bearer {self.key}"}, timeout=30)
        self.script = Script(self._http)
        self._clients: list = []

    @property
    def client(self):
        """The official OpenAI SDK as this tenant (no retries, so an injected fault reaches the test)."""
        if not self._clients:
            import openai

            self._clients.append(openai.OpenAI(base_url=self.base_url, api_key=self.key, max_retries=0))
        return self._clients[0]

    def openai(self, **options):
        """Another OpenAI SDK client as this tenant, e.g. `openai(max_retries=2, timeout=5)`."""
        import openai

        client = openai.OpenAI(base_url=self.base_url, api_key=self.key, **options)
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self._http.close()


@pytest.fixture(scope="session")
def understudy_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A live Understudy for the whole session: the one at --understudy-url, or one started here."""
    url = request.config.getoption("understudy_url")
    if url:
        yield UnderstudyServer(url.rstrip("/"))
        return
    server = start_understudy(tmp_path_factory.mktemp("understudy"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def understudy(understudy_server: UnderstudyServer):
    """A fresh tenant on the session's server: `.client`, `.script`, `.key`, `.base_url`."""
    tenant = Understudy(understudy_server)
    try:
        yield tenant
    finally:
        tenant.close()
