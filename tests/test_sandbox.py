"""The code_interpreter sandbox, with real subprocesses: output, files, limits, isolation, clean-up."""
from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import time

import pytest

from app.services.assistants import sandbox
from app.services.assistants.sandbox import SandboxFile, run_python, sandbox_available

pytestmark = pytest.mark.anyio
AVAILABLE, WHY = sandbox_available()
needs_sandbox = pytest.mark.skipif(not AVAILABLE, reason=f"no sandbox here: {WHY}")


@pytest.fixture
def anyio_backend():
    return "asyncio"


def processes_with_argv(argv: list[str]) -> list[int]:
    """Pids (host view) of live processes with exactly this command line."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        found = []
        for proc in psutil.process_iter(["cmdline", "status"]):
            if proc.info["cmdline"] == argv and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        return found
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().split(b"\0")[:-1] == [a.encode() for a in argv]:
                    found.append(int(pid))
        except OSError:
            continue
    return found


async def gone(argv: list[str], within: float = 2.0) -> bool:
    deadline = time.monotonic() + within
    while processes_with_argv(argv):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


@needs_sandbox
async def test_output_and_written_files_come_back():
    code = (
        "import os, sys\n"
        "print('hello from the sandbox')\n"
        "print('to stderr', file=sys.stderr)\n"
        "os.makedirs('out')\n"
        "open('out/data.csv', 'w').write('a,b\\n1,2\\n')\n"
        "open('blob.bin', 'wb').write(bytes(range(256)))\n"
    )
    result = await run_python(code)
    assert result.error is None and result.exit_code == 0
    assert result.logs == "hello from the sandbox\nto stderr\n"
    assert [(f.name, f.data) for f in result.files] == [("blob.bin", bytes(range(256))), ("out/data.csv", b"a,b\n1,2\n")]


@needs_sandbox
async def test_inputs_are_readable_and_only_changed_ones_return():
    inputs = [SandboxFile("data/in.csv", b"x,y\n3,4\n"), SandboxFile("notes.txt", b"keep me"), SandboxFile("./edit.txt", b"old")]
    code = "print(open('data/in.csv').read().split()[1])\nopen('edit.txt', 'w').write('new')\nprint(open('notes.txt').read())"
    result = await run_python(code, inputs=inputs)
    assert result.error is None
    assert result.logs == "3,4\nkeep me\n"
    assert [(f.name, f.data) for f in result.files] == [("edit.txt", b"new")]


@needs_sandbox
async def test_an_exception_fails_with_the_traceback_in_logs():
    result = await run_python("x = 1\nraise ValueError('boom')\n")
    assert result.error == "Exited with status 1." and result.exit_code == 1
    assert "Traceback (most recent call last)" in result.logs
    assert 'File "<code>", line 2' in result.logs and "raise ValueError('boom')" in result.logs
    assert result.logs.rstrip().endswith("ValueError: boom")


@needs_sandbox
async def test_an_infinite_loop_times_out():
    started = time.monotonic()
    result = await run_python("print('looping', flush=True)\nwhile True:\n    pass\n", timeout_s=2)
    assert time.monotonic() - started < 4
    assert result.error == "Execution timed out after 2 s." and result.exit_code is None
    assert "looping" in result.logs


@needs_sandbox
@pytest.mark.parametrize("code", ["x = bytearray(1024 ** 3)", "chunks = []\nwhile True:\n    chunks.append(bytearray(1 << 20))"])
async def test_a_memory_hog_hits_the_memory_limit(code):
    result = await run_python(code, memory_mb=128, timeout_s=10)
    assert result.error == "Memory limit exceeded.", result.logs
    assert "MemoryError" in result.logs


@needs_sandbox
async def test_no_network_not_even_the_hosts_loopback():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        socket.create_connection(("127.0.0.1", port), timeout=1).close()  # reachable from out here
        listener.accept()[0].close()
        code = (
            "import socket\n"
            "results = []\n"
            f"for target in [('127.0.0.1', {port}), ('1.1.1.1', 53), ('8.8.8.8', 443), ('10.255.255.53', 53)]:\n"
            "    try:\n"
            "        socket.create_connection(target, timeout=3).close()\n"
            "        results.append('connected')\n"
            "    except OSError as exc:\n"
            "        results.append(type(exc).__name__)\n"
            "try:\n"
            "    socket.getaddrinfo('example.com', 80)\n"
            "    results.append('resolved')\n"
            "except OSError:\n"
            "    results.append('no-dns')\n"
            "print(results)\n"
        )
        result = await run_python(code, timeout_s=15)
        assert result.error is None, result.logs
        assert "connected" not in result.logs and "resolved" not in result.logs
        assert result.logs.count("Error") == 4 and "no-dns" in result.logs
        with pytest.raises(BlockingIOError):  # nothing arrived from inside
            listener.accept()


@needs_sandbox
async def test_the_environment_is_minimal_and_fresh(monkeypatch):
    monkeypatch.setenv("UNDERSTUDY_SECRET_TEST", "hunter2-secret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-leak")
    code = (
        "import os, sys\n"
        "print(sorted(os.environ.items()))\n"
        "print('cwd', os.getcwd())\n"
        f"print('server visible', os.path.exists('/proc/{os.getpid()}/environ'))\n"
        "print('stdin', repr(sys.stdin.read()))\n"
    )
    result = await run_python(code)
    assert result.error is None, result.logs
    assert "UNDERSTUDY" not in result.logs and "hunter2" not in result.logs and "sk-should-not-leak" not in result.logs
    assert "stdin ''" in result.logs
    if "PID" in WHY:  # its own /proc: the server's processes (and their environments) are not there
        assert "server visible False" in result.logs
    work = result.logs.split("cwd ", 1)[1].split()[0]
    run_dir = os.path.dirname(work)
    assert work.endswith("/work") and not os.path.exists(run_dir)  # deleted afterwards
    assert f"('HOME', '{run_dir}/home')" in result.logs and f"('TMPDIR', '{run_dir}/tmp')" in result.logs


@needs_sandbox
async def test_spawned_children_are_all_killed_on_timeout():
    marker = f"{secrets.randbelow(10**6) + 10**6}.5"  # `sleep <marker>` identifies them on the host
    sleep = shutil.which("sleep")
    code = (
        "import os, time\n"
        "for i in range(40):\n"
        "    if os.fork() == 0:\n"
        "        if i % 2:\n"
        "            os.setsid()  # leave the process group: only the namespace catches these\n"
        f"        os.execv({sleep!r}, ['sleep', {marker!r}])\n"
        "print('spawned', flush=True)\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    result = await run_python(code, timeout_s=2)
    assert time.monotonic() - started < 4
    assert result.error == "Execution timed out after 2 s." and "spawned" in result.logs
    assert await gone(["sleep", marker])


@needs_sandbox
async def test_background_processes_do_not_outlive_the_run():
    marker = f"{secrets.randbelow(10**6) + 10**6}.25"
    code = f"import os\nif os.fork() == 0:\n    os.setsid()\n    os.execv({shutil.which('sleep')!r}, ['sleep', {marker!r}])\nprint('left one behind')"
    result = await run_python(code)
    assert result.error is None and "left one behind" in result.logs
    assert await gone(["sleep", marker])


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil.txt", "a/../../evil.txt", "", ".", "a/\x00b"])
async def test_input_names_that_escape_the_working_dir_are_rejected(name):
    result = await run_python("print('ran')", inputs=[SandboxFile(name, b"x")])
    assert result.error.startswith("Invalid input file name") and result.exit_code is None
    assert "ran" not in result.logs


@needs_sandbox
async def test_symlinks_and_special_files_are_not_returned():
    code = (
        "import os\n"
        "os.symlink('/etc/hostname', 'host.txt')\n"
        "os.symlink('/etc', 'etc')\n"
        "os.mkfifo('pipe')\n"
        "open('real.txt', 'w').write('real')\n"
    )
    result = await run_python(code)
    assert result.error is None, result.logs
    assert [(f.name, f.data) for f in result.files] == [("real.txt", b"real")]


@needs_sandbox
async def test_the_run_directory_is_deleted_even_when_the_code_locks_it():
    code = "import os\nos.makedirs('locked/deeper')\nopen('locked/deeper/f', 'w').write('x')\nos.chmod('locked/deeper', 0)\nos.chmod('locked', 0)\nprint(os.getcwd())"
    result = await run_python(code)
    assert result.error is None, result.logs
    assert not os.path.exists(os.path.dirname(result.logs.strip()))


@needs_sandbox
async def test_output_files_are_capped_in_count_and_size():
    result = await run_python("for i in range(25):\n    open(f'f{i:02}.txt', 'w').write(str(i))")
    assert [f.name for f in result.files] == [f"f{i:02}.txt" for i in range(20)]
    assert "5 more output file(s) not returned" in result.logs
    code = "open('a.bin', 'wb').write(b'a' * 600)\nopen('b.bin', 'wb').write(b'b' * 600)\nwith open('c.bin', 'wb') as f:\n    f.write(b'c' * 2000)"
    result = await run_python(code, max_output_bytes=1000)
    assert result.error == "Exited with status 1." and "File too large" in result.logs  # RLIMIT_FSIZE
    assert [f.name for f in result.files] == ["a.bin"] and "output file(s) not returned" in result.logs


@needs_sandbox
async def test_long_output_is_truncated_keeping_the_end():
    result = await run_python("for i in range(100000):\n    print(i)\nraise SystemExit(3)")
    assert result.error == "Exited with status 3." and result.exit_code == 3
    assert len(result.logs) < 21_000 and "bytes of output truncated" in result.logs
    assert result.logs.startswith("0\n1\n") and result.logs.endswith("99999\n")


@needs_sandbox
async def test_numpy_is_importable_and_the_event_loop_keeps_running():
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        result = await run_python("import time, numpy\nprint(int(numpy.arange(5).sum()))\ntime.sleep(1)")
    finally:
        task.cancel()
    assert result.error is None and result.logs == "10\n", result.logs
    assert ticks >= 10


async def test_an_unavailable_sandbox_refuses_without_running(monkeypatch, tmp_path):
    monkeypatch.setattr(sandbox, "_isolation", (None, "no network namespaces (testing)"))
    assert sandbox_available() == (False, "no network namespaces (testing)")
    marker = tmp_path / "ran"
    result = await run_python(f"open({str(marker)!r}, 'w').write('ran')")
    assert result.error == "The code interpreter sandbox is unavailable on this server: no network namespaces (testing)."
    assert result.exit_code is None and result.files == [] and not marker.exists()


def test_the_probe_explains_what_is_missing():
    assert sandbox._probe(None) == (None, "the `unshare` command (util-linux) is not installed")
    command, why = sandbox._probe("/nonexistent/unshare")
    assert command is None and "/nonexistent/unshare" in why


@needs_sandbox
async def test_too_many_processes_stops_the_run():
    marker = f"{secrets.randbelow(10**6) + 10**6}.75"
    code = (
        "import os, time\n"
        "for i in range(400):\n"
        "    if os.fork() == 0:\n"
        f"        os.execv({shutil.which('sleep')!r}, ['sleep', {marker!r}])\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    result = await run_python(code, timeout_s=10)
    assert time.monotonic() - started < 5
    # As root the launcher counts them (RLIMIT_NPROC does not bind uid 0); otherwise fork() itself fails.
    assert result.error == f"Too many processes (the limit is {sandbox.NPROC})." or (
        result.error == "Exited with status 1." and "BlockingIOError" in result.logs), result
    assert await gone(["sleep", marker])
