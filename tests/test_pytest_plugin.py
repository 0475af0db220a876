"""The pytest plugin an install offers (pytest_understudy.py), run as a user runs it: pytest in a project of
their own — one with its own `app` package, which the plugin must leave alone — found through the entry point."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

USER_TESTS = '''
import json
import os
from pathlib import Path

import openai
import pytest

import app  # the user's own package, not Understudy's


def test_server_in_use(understudy_server):
    Path(os.environ["WHERE_FILE"]).write_text(f"{understudy_server.url} {understudy_server.process is not None}")


def test_own_app_package_is_untouched():
    assert app.WHOSE == "the user's"


def test_reply_and_calls(understudy):
    understudy.script.reply("hello there", when_user_says="hi")
    answer = understudy.client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi!"}])
    assert answer.choices[0].message.content == "hello there"
    [call] = understudy.script.calls()
    assert call["request"]["messages"][0]["content"] == "hi!" and call["rule_id"] and call["outcome"] == "reply"


def test_tool_call(understudy):
    understudy.script.tool_call("get_weather", {"city": "Oslo"})
    answer = understudy.client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "weather?"}],
                                                       tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {}}}])
    [tool_call] = answer.choices[0].message.tool_calls
    assert (tool_call.function.name, json.loads(tool_call.function.arguments)) == ("get_weather", {"city": "Oslo"})


def test_fail_twice_then_retried(understudy):
    understudy.script.fail(429, times=2, retry_after=0)
    with pytest.raises(openai.RateLimitError):
        understudy.client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    patient = understudy.openai(max_retries=2)
    answer = patient.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert answer.choices[0].message.content  # the offline model, once the rule retired
    assert [c["outcome"] for c in understudy.script.calls()] == ["fault", "fault", "model"]


def test_tenants_are_apart(understudy, understudy_server):
    understudy.script.reply("only mine")
    assert [rule["reply"]["text"] for rule in understudy.script.rules()] == ["only mine"]
    import httpx
    other = httpx.get(f"{understudy_server.url}/_understudy/v1/rules", headers={"Authorization": f"Bearer {understudy_server.new_key()}"})
    assert other.json()["data"] == []
'''


def _user_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "app").mkdir(parents=True)
    (project / "app" / "__init__.py").write_text('WHOSE = "the user\'s"\n')
    (project / "tests").mkdir()
    (project / "tests" / "test_with_understudy.py").write_text(textwrap.dedent(USER_TESTS))
    (project / "pytest.ini").write_text("[pytest]\npythonpath = .\n")
    return project


def _run_pytest(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "UNDERSTUDY_"))}
    env["WHERE_FILE"] = str(project / "where.txt")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=240)


def test_plugin_starts_a_server_and_gives_each_test_a_tenant(tmp_path):
    project = _user_project(tmp_path)
    result = _run_pytest(project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 passed" in result.stdout, result.stdout
    url, started_here = (project / "where.txt").read_text().split()
    assert url.startswith("http://127.0.0.1:") and started_here == "True"


def test_plugin_uses_a_running_server(tmp_path, server):
    project = _user_project(tmp_path)
    result = _run_pytest(project, f"--understudy-url={server.url}", "-k", "server_in_use or reply_and_calls or tenants")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout, result.stdout
    assert (project / "where.txt").read_text() == f"{server.url} False"  # no server of its own
