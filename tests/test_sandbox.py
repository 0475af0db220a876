"""The code_interpreter sandbox, with real subprocesses: output, files, limits, isolation, clean-up."""
from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import pytest

from app.services.assistants import sandbox, sandbox_cgroup
from app.services.assistants.sandbox import SandboxFile, run_python, sandbox_available

pytestmark = pytest.mark.anyio
AVAILABLE, WHY = sandbox_available()
ROOT = Path(__file__).resolve().parent.parent
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
    assert "server visible False" in result.logs  # its own /proc: the server's processes (and environments) are not there
    assert "cwd /mnt/data" in result.logs
    assert "('HOME', '/mnt/home')" in result.logs and "('TMPDIR', '/tmp')" in result.logs


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
async def test_files_the_code_locks_do_not_stop_the_run():
    code = "import os\nos.makedirs('locked/deeper')\nopen('locked/deeper/f', 'w').write('x')\nos.chmod('locked/deeper', 0)\nos.chmod('locked', 0)\nopen('ok.txt', 'w').write('ok')"
    result = await run_python(code)
    assert result.error is None, result.logs
    assert [(f.name, f.data) for f in result.files] == [("ok.txt", b"ok")]


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
    assert sandbox._probe(None) == (None, "bubblewrap (`bwrap`) is not installed")
    bwrap, why = sandbox._probe("/nonexistent/bwrap")
    assert bwrap is None and "/nonexistent/bwrap" in why


def test_a_bwrap_that_cannot_create_namespaces_is_no_sandbox(tmp_path):
    """Fail closed: a bwrap that cannot build the sandbox (no user namespaces, a seccomp-confined container) is
    reported with its own words, and nothing runs."""
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\n[ \"$1\" = --help ] && exit 0\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    bwrap, why = sandbox._probe(str(fake))
    assert bwrap is None and why == "bwrap could not build the sandbox (bwrap: No permissions to create new namespace)"


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


# ---- the private root, totals and the host work dir (bubblewrap) ----

FORK_HOGS = """import os, time
for i in range({n}):
    if os.fork() == 0:
        block = bytearray({mb} * 1024 * 1024)
        for j in range(0, len(block), 4096):
            block[j] = 1
        time.sleep(30)
        os._exit(0)
print('forked', flush=True)
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
"""


@needs_sandbox
async def test_memory_is_one_total_for_all_the_runs_processes():
    """Each child stays under its own RLIMIT_AS; together they pass the total, and the run ends."""
    started = time.monotonic()
    result = await run_python(FORK_HOGS.format(n=6, mb=100), memory_mb=256, timeout_s=20)
    assert result.error == "Memory limit exceeded." and result.exit_code is None, result
    assert time.monotonic() - started < 10


@needs_sandbox
async def test_the_disk_budget_is_one_tmpfs_for_work_dir_and_tmp():
    code = (
        "import os\n"
        "written = 0\n"
        "try:\n"
        "    for i in range(12):\n"
        "        with open(f'/tmp/t{i}' if i % 2 else f'w{i}', 'wb') as f:\n"
        "            f.write(b'x' * (8 << 20))\n"
        "        written += 1\n"
        "finally:\n"
        "    print('written', written)\n"
    )
    result = await run_python(code, disk_mb=48)
    assert result.error == "Exited with status 1." and "No space left on device" in result.logs, result.logs
    written = int(result.logs.split("written ")[1].split()[0])
    assert 3 <= written < 6  # 48 MB less /dev/shm's share, across the work dir and /tmp together


@needs_sandbox
async def test_without_tmpfs_sizes_the_init_enforces_the_disk_budget(tmp_path):
    """A bwrap older than 0.7 has no --size: the init then measures the tmpfs and stops the run."""
    real = shutil.which("bwrap")
    wrapper = tmp_path / "bwrap"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = --help ]; then {real} --help | grep -v -- --size; exit 0; fi\n'
        'for arg; do shift; if [ "$skip" = 1 ]; then skip=0; continue; fi\n'
        '  if [ "$arg" = --size ]; then skip=1; continue; fi; set -- "$@" "$arg"; done\n'
        f'exec {real} "$@"\n')
    wrapper.chmod(0o755)
    code = "import time\nfor i in range(40):\n    open(f'f{i}', 'wb').write(b'x' * (1 << 20))\n    time.sleep(0.01)\nprint('not stopped')"
    result = await sandbox._execute(str(wrapper), code, {}, timeout_s=20, memory_mb=256, disk_mb=16,
                                    max_output_bytes=4 << 20, work_dir=None)
    assert result.error == "Disk limit exceeded (16 MB)." and "not stopped" not in result.logs, result


@needs_sandbox
async def test_a_host_work_dir_is_bound_and_keeps_its_files(tmp_path):
    """The shape containers will use: the same host dir across runs; only new or changed files come back."""
    work = tmp_path / "container"
    work.mkdir()
    first = await run_python("open('kept.txt', 'w').write('one')\nopen('/tmp/scratch', 'w').write('x')",
                             inputs=[SandboxFile("in.csv", b"a,b\n")], work_dir=str(work))
    assert first.error is None, first.logs
    assert [f.name for f in first.files] == ["kept.txt"]
    assert sorted(os.listdir(work)) == ["in.csv", "kept.txt"]  # /tmp was the run's own
    second = await run_python("import os\nprint(sorted(os.listdir('.')), open('kept.txt').read())\nopen('new.txt', 'w').write('two')",
                              work_dir=str(work))
    assert second.error is None, second.logs
    assert "['in.csv', 'kept.txt'] one" in second.logs and [f.name for f in second.files] == ["new.txt"]


@needs_sandbox
async def test_the_root_is_private_and_read_only(tmp_path):
    marker = tempfile.NamedTemporaryFile(prefix="understudy-host-", delete=False)
    marker.close()
    site = sysconfig.get_paths()["purelib"]
    code = (
        "import os, sys\n"
        f"for path in [{marker.name!r}, {sys.prefix!r}, '/etc/shadow', '/etc/passwd', '/run', '/var', {str(ROOT)!r}]:\n"
        "    print(path, os.path.exists(path))\n"
        "for path in ['/usr/x', '/opt/understudy/site-packages/x.pth', '/x', '/dev/x', os.path.dirname(sys.executable) + '/x']:\n"
        "    try:\n"
        "        open(path, 'w').close()\n"
        "        print('wrote', path)\n"
        "    except OSError as exc:\n"
        "        print('refused', path, exc.errno)\n"
        "print('sys.path', [p for p in sys.path if 'site-packages' in p])\n"
    )
    try:
        result = await run_python(code)
    finally:
        os.unlink(marker.name)
    assert result.error is None, result.logs
    assert " True" not in result.logs and "wrote" not in result.logs, result.logs
    assert result.logs.count("refused") == 5
    assert "'/opt/understudy/site-packages'" in result.logs and sys.prefix not in result.logs.split("sys.path")[1]  # the packages, not the venv
    assert not os.path.exists(os.path.join(site, "x.pth"))


@needs_sandbox
async def test_seccomp_closes_memory_the_total_cannot_see_and_odd_socket_families():
    code = (
        "import os, socket\n"
        "for name, call in [('memfd', lambda: os.memfd_create('x')), ('vsock', lambda: socket.socket(40, socket.SOCK_STREAM)),\n"
        "                   ('alg', lambda: socket.socket(38, socket.SOCK_SEQPACKET))]:\n"
        "    try:\n"
        "        call()\n"
        "        print(name, 'allowed')\n"
        "    except OSError as exc:\n"
        "        print(name, 'refused', exc.errno)\n"
        "socket.socket(socket.AF_UNIX).close(); socket.socket(socket.AF_INET6).close()\n"
    )
    result = await run_python(code)
    assert result.error is None, result.logs
    assert "allowed" not in result.logs and result.logs.count("refused") == 3


# ---- cgroup v2, where it can be had (not on cgroup v1 machines: there the init alone holds the total) ----

def _cgroup_tree(tmp_path, own: str, parent_subtree: str) -> tuple[str, str]:
    mount = tmp_path / "cgroup"
    group = mount / own.strip("/")
    group.mkdir(parents=True)
    (group.parent / "cgroup.subtree_control").write_text(parent_subtree)
    (tmp_path / "mountinfo").write_text(
        "24 31 0:21 / /proc rw,nosuid - proc proc rw\n"
        f"35 25 0:30 / {mount} rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw\n")
    (tmp_path / "self-cgroup").write_text(f"4:memory:/elsewhere\n0::{own}\n")
    return str(tmp_path / "mountinfo"), str(tmp_path / "self-cgroup")


def test_run_groups_go_beside_the_servers_group_where_memory_is_delegated(tmp_path):
    mountinfo, cgroup = _cgroup_tree(tmp_path, "/system.slice/understudy.service/server", "cpu memory pids")
    assert sandbox_cgroup.find_base(mountinfo, cgroup) == str(tmp_path / "cgroup/system.slice/understudy.service")
    mountinfo, cgroup = _cgroup_tree(tmp_path / "other", "/user.slice/app", "cpu pids")
    assert sandbox_cgroup.find_base(mountinfo, cgroup) is None  # memory not handed down: the init alone


def test_a_run_group_limits_memory_and_its_wrapper_joins_it(tmp_path):
    group = sandbox_cgroup.RunGroup.create(123456, str(tmp_path))
    assert group.path and open(os.path.join(group.path, "memory.max")).read() == "123456"
    (Path(group.path) / "cgroup.procs").write_text("")
    (Path(group.path) / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    ran = subprocess.run(group.wrap(["sh", "-c", "echo $$; echo ran"]), capture_output=True, text=True)
    pid, said = ran.stdout.split()
    assert said == "ran" and open(os.path.join(group.path, "cgroup.procs")).read().strip() == pid  # exec: the same process
    assert group.oom_killed()
    assert sandbox_cgroup.RunGroup.create(1, None).wrap(["true"]) == ["true"]


def test_this_machine_says_whether_the_kernel_holds_the_total():
    base = sandbox_cgroup.base()
    assert base is None or os.path.isdir(base)  # cgroup v1 (hybrid): None, and the init's polling is the total
