"""Claude Code, the real CLI from the npm registry (installed by `make test` into .tools/), completes a
non-interactive prompt against the offline model: it sends `POST /v1/messages?beta=true` with its beta
headers, streaming, a large tool list, mid-conversation system turns and its own default model id."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import ROOT, new_key

CLAUDE = ROOT / ".tools" / "node_modules" / ".bin" / "claude"

pytestmark = pytest.mark.skipif(not CLAUDE.exists(), reason="Claude Code is not installed (make test installs it with npm)")


def run_claude(server, home, prompt: str, *extra: str) -> dict:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": server.url,
        "ANTHROPIC_API_KEY": new_key(),
        # No traffic anywhere but Understudy: no telemetry, no update checks, no error reporting.
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }
    done = subprocess.run(
        [str(CLAUDE), "-p", prompt, "--output-format", "json", *extra],
        cwd=home, env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(done.stdout)


def test_claude_code_completes_a_prompt(server, tmp_path):
    result = run_claude(server, tmp_path, "Say hello to the lighthouse keeper")
    assert result["type"] == "result" and result["is_error"] is False, result
    assert result["subtype"] == "success"
    assert "lighthouse" in result["result"].lower()
    assert result["usage"]["input_tokens"] > 0 and result["usage"]["output_tokens"] > 0


def test_claude_code_with_another_model_id(server, tmp_path):
    result = run_claude(server, tmp_path, "Summarise the tides", "--model", "claude-haiku-4-5")
    assert result["is_error"] is False, result
    assert "tides" in result["result"].lower()
