"""The `understudy` console script as a user runs it: migrate, serve, Ctrl-C, environment variables,
and data surviving a restart."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
from alembic.script import ScriptDirectory

from storage.db import alembic_config
from storage.models import is_keyword_index, metadata
from tests.conftest import free_port, new_key, start_server

UNDERSTUDY = str(Path(sys.executable).parent / "understudy")
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()
LIVENESS = 30.0  # start-up and shutdown take about a second; this only catches hangs


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment minus any UNDERSTUDY_* setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNDERSTUDY_")}
    return {**env, "UNDERSTUDY_LOG_LEVEL": "info", **extra}


def launch(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
    log_path = cwd / f"serve-{time.monotonic_ns()}.log"
    process = subprocess.Popen([UNDERSTUDY, *args], cwd=cwd, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    return process, log_path


def wait_healthy(url: str, process: subprocess.Popen, log_path: Path) -> httpx.Response:
    deadline = time.monotonic() + LIVENESS
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode}:\n{log_path.read_text()}"
        try:
            response = httpx.get(f"{url}/healthz", timeout=1)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"no answer on {url}:\n{log_path.read_text()}")


def stop(process: subprocess.Popen, sig: int) -> int:
    process.send_signal(sig)
    try:
        return process.wait(LIVENESS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"still running {LIVENESS}s after signal {sig}")


def sqlite_tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_migrate_creates_the_database_and_prints_the_revision(tmp_path):
    data_dir = tmp_path / "fresh" / "data"
    for _ in range(2):  # the second run finds the schema at head and changes nothing
        result = subprocess.run(
            [UNDERSTUDY, "migrate", "--data-dir", str(data_dir)], cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=LIVENESS
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"database at revision {HEAD}"
    assert (data_dir / "understudy.db").is_file()
    tables = {name for name in sqlite_tables(data_dir / "understudy.db") if not is_keyword_index(name)}
    assert tables == set(metadata.tables) | {"alembic_version"}
    assert not (tmp_path / "data").exists()  # nothing at the default location


def test_migrate_honours_understudy_data_dir(tmp_path):
    data_dir = tmp_path / "from-env"
    result = subprocess.run(
        [UNDERSTUDY, "migrate"], cwd=tmp_path, env=clean_env(UNDERSTUDY_DATA_DIR=str(data_dir)), capture_output=True, text=True, timeout=LIVENESS
    )
    assert result.returncode == 0, result.stderr
    assert HEAD in result.stdout
    assert (data_dir / "understudy.db").is_file()
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_answers_and_shuts_down_cleanly_on_a_signal(tmp_path, sig):
    port, data_dir = free_port(), tmp_path / "srv" / "data"
    process, log_path = launch(["serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)], tmp_path, clean_env())
    try:
        health = wait_healthy(f"http://127.0.0.1:{port}", process, log_path)
        assert health.json()["status"] == "ok"
        assert (data_dir / "understudy.db").is_file()
    finally:
        code = stop(process, sig)
    log = log_path.read_text()
    assert "Application shutdown complete" in log, log
    assert "Traceback" not in log, log
    if sig == signal.SIGINT:
        assert code == 0, log  # Ctrl-C is a normal way to stop it
    else:
        # uvicorn re-raises SIGTERM after its graceful shutdown: the exit is "killed by SIGTERM".
        assert code in (0, -signal.SIGTERM), log


def test_serve_honours_understudy_port_and_data_dir(tmp_path):
    port, data_dir = free_port(), tmp_path / "env-data"
    env = clean_env(UNDERSTUDY_PORT=str(port), UNDERSTUDY_DATA_DIR=str(data_dir))
    process, log_path = launch(["serve"], tmp_path, env)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process, log_path)
        assert (data_dir / "understudy.db").is_file()
        assert not (tmp_path / "data").exists()
    finally:
        assert stop(process, signal.SIGINT) == 0, log_path.read_text()


def test_options_win_over_environment(tmp_path):
    port, env_port = free_port(), free_port()
    data_dir = tmp_path / "option-data"
    env = clean_env(UNDERSTUDY_PORT=str(env_port), UNDERSTUDY_DATA_DIR=str(tmp_path / "env-data"))
    process, log_path = launch(["serve", "--port", str(port), "--data-dir", str(data_dir)], tmp_path, env)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process, log_path)
        assert (data_dir / "understudy.db").is_file()
        assert not (tmp_path / "env-data").exists()
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{env_port}/healthz", timeout=2)
    finally:
        assert stop(process, signal.SIGINT) == 0, log_path.read_text()


def test_data_persists_across_a_restart(tmp_path):
    data_dir, key = tmp_path / "data", new_key()
    content = b"line one\n" + bytes(range(256)) * 64 + "\nünïcode ✓".encode()

    first = start_server(data_dir)
    try:
        with openai.OpenAI(base_url=f"{first.url}/v1", api_key=key, max_retries=0) as client:
            created = client.files.create(file=("keep.jsonl", content), purpose="batch")
            upload = client.uploads.upload_file_chunked(
                file=content, filename="parts.txt", bytes=len(content), mime_type="text/plain", purpose="assistants", part_size=5000
            )
    finally:
        assert first.stop(signal.SIGINT) == 0, first.log()

    second = start_server(data_dir)
    try:
        with openai.OpenAI(base_url=f"{second.url}/v1", api_key=key, max_retries=0) as client:
            assert client.files.retrieve(created.id) == created
            assert client.files.content(created.id).read() == content
            assert client.files.content(upload.file.id).read() == content
            assert {f.id for f in client.files.list()} == {created.id, upload.file.id}
        with openai.OpenAI(base_url=f"{second.url}/v1", api_key=new_key(), max_retries=0) as stranger:
            with pytest.raises(openai.NotFoundError):
                stranger.files.retrieve(created.id)
    finally:
        assert second.stop(signal.SIGINT) == 0, second.log()
