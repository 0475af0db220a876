"""Codex CLI, the real CLI from the npm registry (installed by `make test` into .tools/), completes a
non-interactive prompt against the offline model through the Responses API: a custom model provider
in `$CODEX_HOME/config.toml` (`wire_api = "responses"`) makes it send `POST /v1/responses` with
`stream: true`, its developer/user message items, ten tools (function, custom/freeform,
tool_search, web_search), `reasoning`, `store: false`, `include: ["reasoning.encrypted_content"]`
and `client_metadata` (tests/support/codex_request.json is one such body, for gpt-5.5). It prints
the assistant message from `response.output_item.done` and exits 0 only once `response.completed`
arrived (without it: five reconnects, then exit 1)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, new_key

CODEX = ROOT / ".tools" / "node_modules" / ".bin" / "codex"

pytestmark = pytest.mark.skipif(not CODEX.exists(), reason="Codex CLI is not installed (make test installs it with npm)")

# No traffic anywhere but Understudy: no update check, no analytics or feedback upload, and no
# curated-plugin sync (which otherwise reaches github.com, api.github.com and chatgpt.com).
CONFIG = """\
{model_line}model_provider = "understudy"
check_for_update_on_startup = false

[model_providers.understudy]
name = "Understudy"
base_url = "{base_url}"
wire_api = "responses"
env_key = "UNDERSTUDY_API_KEY"

[analytics]
enabled = false

[feedback]
enabled = false

[features]
plugins = false
"""


def run_codex(server, tmp_path: Path, prompt: str, *extra: str, model: str | None = None) -> subprocess.CompletedProcess:
    codex_home, work = tmp_path / "codex-home", tmp_path / "work"
    codex_home.mkdir()
    work.mkdir()
    model_line = f'model = "{model}"\n' if model else ""
    (codex_home / "config.toml").write_text(CONFIG.format(model_line=model_line, base_url=f"{server.url}/v1"))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "CODEX_HOME": str(codex_home),
        "UNDERSTUDY_API_KEY": new_key(),
    }
    done = subprocess.run(
        [str(CODEX), "exec", "--strict-config", "--skip-git-repo-check", "--ephemeral", *extra, prompt],
        cwd=work, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:] + server.log()[-3000:]
    return done


def test_codex_completes_a_prompt(server, tmp_path):
    """The public Responses shape: `tools` (function, custom, tool_search, web_search), `client_metadata`."""
    done = run_codex(server, tmp_path, "Say hello to the lighthouse keeper", model="gpt-5.5")
    assert done.stdout.strip(), done.stderr[-2000:]
    assert "lighthouse" in done.stdout.lower(), done.stdout
    assert "model: gpt-5.5" in done.stderr, done.stderr[-2000:]
    assert "tokens used" in done.stderr, done.stderr[-2000:]  # printed only when response.completed has usage


def test_codex_with_its_default_model(server, tmp_path):
    """No `model` in config.toml: Codex asks for its own default (a gpt-6 model) in its lighter shape,
    with no `tools` but an `additional_tools` input item (tool namespaces) and `reasoning.context`."""
    done = run_codex(server, tmp_path, "Summarise the tides")
    assert "tides" in done.stdout.lower(), done.stdout
