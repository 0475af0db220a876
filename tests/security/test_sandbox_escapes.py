"""The code_interpreter sandbox holds against a hostile tenant: each escape that once worked through a real
Assistants run (another tenant's blob, the SQLite file, a .pth in the server's venv, database sockets,
/etc/shadow, `umount /proc`, memory per process instead of in total, files left behind) is tried again
from inside, through a live server and the official SDK, and must fail.

The offline model runs the fenced ```python block of the user's message. The server's data dir is where
a real one lives (./data, not under /tmp, which the sandbox replaces anyway)."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import sysconfig
import tempfile
import threading
import time

import openai
import psutil
import pytest

from app.services.assistants.sandbox import sandbox_available
from tests.conftest import ROOT, new_key, start_server

AVAILABLE, WHY = sandbox_available()
pytestmark = pytest.mark.skipif(not AVAILABLE, reason=f"no sandbox here: {WHY}")
MODEL = "gpt-4o-mini"
MEMORY_CAP = 512 * 1024 * 1024  # run_python's default, which code_interpreter uses
PG_SOCKET, MARIADB_SOCKET = "/var/run/postgresql/.s.PGSQL.5432", "/run/mysqld/mysqld.sock"
# Each probe prints `blocked <what>` or `ESCAPED <what>: <evidence>`.
PRELUDE = """import ctypes, errno, json, os, socket, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
def report(what, escaped, evidence=''):
    print(('ESCAPED ' + what + ': ' + str(evidence)[:300]) if escaped else ('blocked ' + what), flush=True)
def attempt(what, action):
    try:
        evidence = action()
    except OSError as exc:
        report(what, False)
    else:
        report(what, True, evidence)
"""


@pytest.fixture(scope="module")
def server():
    data_dir = ROOT / "data" / f"escape-test-{secrets.token_hex(4)}"
    srv = start_server(data_dir)
    yield srv
    srv.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def client(server):
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=new_key(), max_retries=0, timeout=60) as sdk:
        yield sdk


def run_code(client, code: str, timeout: float = 60) -> str:
    """A real Assistants run whose code_interpreter call runs `code`; returns the call's logs."""
    assistant = client.beta.assistants.create(model=MODEL, tools=[{"type": "code_interpreter"}])
    prompt = f"Use the code interpreter:\n```python\n{code}\n```"
    run = client.beta.threads.create_and_run_poll(assistant_id=assistant.id, poll_interval_ms=100,
                                                  thread={"messages": [{"role": "user", "content": prompt}]})
    deadline = time.monotonic() + timeout
    while run.status not in ("completed", "failed", "cancelled", "expired", "incomplete"):
        assert time.monotonic() < deadline, f"run stuck in {run.status}"
        time.sleep(0.1)
        run = client.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id)
    assert run.status == "completed", run.last_error
    step = client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id, order="asc").data[0]
    call = step.step_details.tool_calls[0]
    assert call.type == "code_interpreter"
    return "\n".join(o.logs for o in call.code_interpreter.outputs if o.type == "logs")


def assert_all_blocked(logs: str, expected: int) -> None:
    assert "ESCAPED" not in logs, logs
    assert logs.count("blocked ") == expected, logs


def other_tenants_blob(server) -> tuple[str, bytes]:
    """Another tenant uploads a file; its blob's path on the host, found by content."""
    secret = b"other tenant's secret " + secrets.token_hex(8).encode()
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=new_key(), max_retries=0) as other:
        other.files.create(file=("secret.txt", secret), purpose="assistants")
    for dirpath, _, filenames in os.walk(server.data_dir):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.getsize(path) == len(secret) and open(path, "rb").read() == secret:
                return path, secret
    raise AssertionError("the other tenant's blob is not under the data dir")


def test_the_data_dir_other_tenants_blobs_and_the_database_are_out_of_reach(server, client):
    blob, secret = other_tenants_blob(server)
    database = str(server.data_dir / "understudy.db")
    assert os.path.exists(database)
    code = PRELUDE + f"""
attempt('list the data dir', lambda: os.listdir({str(server.data_dir)!r}))
attempt('read the other tenant blob', lambda: open({blob!r}, 'rb').read())
attempt('read the SQLite file', lambda: open({database!r}, 'rb').read(100))
import sqlite3
def insert_admin_key():
    db = sqlite3.connect('file:' + {database!r} + '?mode=rw', uri=True)
    db.execute("create table if not exists escaped (x)")
    db.commit()
    return 'wrote the database'
try:
    report('modify the SQLite file', True, insert_admin_key())
except sqlite3.Error:
    report('modify the SQLite file', False)
def find_database():
    for top in sorted(set(os.listdir('/')) - {{'usr', 'proc', 'sys', 'dev'}}):
        for dirpath, _, names in os.walk('/' + top):
            if 'understudy.db' in names:
                return dirpath
    raise OSError('no understudy.db anywhere')
attempt('find a database by walking /', find_database)
"""
    logs = run_code(client, code)
    assert_all_blocked(logs, 5)
    assert open(blob, "rb").read() == secret
    import sqlite3
    with sqlite3.connect(database) as db:
        assert not db.execute("select name from sqlite_master where name = 'escaped'").fetchall()


def test_the_servers_venv_and_site_packages_cannot_be_written(client):
    site = sysconfig.get_paths()["purelib"]  # the server runs this venv (tests/conftest.py: sys.executable)
    name = f"escape-{secrets.token_hex(4)}"
    code = PRELUDE + f"""
attempt('write a .pth into the venv site-packages', lambda: open({site!r} + '/{name}.pth', 'w').write('import os'))
attempt('write into the venv', lambda: open({sys.prefix!r} + '/{name}.txt', 'w').write('x'))
attempt('write a .pth into the mounted site-packages', lambda: open('/opt/understudy/site-packages/{name}.pth', 'w').write('import os'))
attempt('write beside the interpreter', lambda: open(os.path.dirname(sys.executable) + '/{name}', 'w').write('x'))
"""
    assert_all_blocked(run_code(client, code), 4)
    assert not os.path.exists(os.path.join(site, f"{name}.pth")) and not os.path.exists(os.path.join(sys.prefix, f"{name}.txt"))


def test_database_sockets_etc_shadow_and_the_hosts_tmp_are_not_there(server, client):
    marker = tempfile.NamedTemporaryFile(prefix="understudy-host-marker-", delete=False)
    marker.close()
    port = server.url.rsplit(":", 1)[1]
    code = PRELUDE + f"""
def connect_unix(path):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        return 'connected to ' + path
attempt('connect to PostgreSQL socket', lambda: connect_unix({PG_SOCKET!r}))
attempt('connect to MariaDB socket', lambda: connect_unix({MARIADB_SOCKET!r}))
attempt('connect to the server over the host loopback', lambda: socket.create_connection(('127.0.0.1', {port}), timeout=3))
attempt('connect to PostgreSQL over the host loopback', lambda: socket.create_connection(('127.0.0.1', 5432), timeout=3))
attempt('read /etc/shadow', lambda: open('/etc/shadow').read())
attempt('see the host /tmp', lambda: open({marker.name!r}).read())
report('list the host /tmp', os.listdir('/tmp') != [], os.listdir('/tmp'))
attempt('see /run or /var/run', lambda: os.listdir('/run') + os.listdir('/var/run'))
"""
    try:
        logs = run_code(client, code)
    finally:
        os.unlink(marker.name)
    assert_all_blocked(logs, 8)


def test_no_root_no_capabilities_only_loopback_and_seccomp(client):
    code = PRELUDE + """
report('uid 0', os.getuid() == 0 or os.geteuid() == 0, os.getuid())
out = subprocess.run(['id', '-u'], capture_output=True, text=True).stdout.strip()
report('id -u says 0', out == '0' or not out.isdigit(), out)
caps = {l.split(':')[0]: int(l.split()[1], 16) for l in open('/proc/self/status') if l.startswith('Cap')}
report('capabilities', any(caps.values()), caps)
report('a network besides lo', [n for _, n in socket.if_nameindex()] != ['lo'], socket.if_nameindex())
report('no seccomp filter', 'Seccomp:\\t2' not in open('/proc/self/status').read())
def call(name, *args):
    result = getattr(libc, name)(*args)
    if result == -1:
        raise OSError(ctypes.get_errno(), name)
    return f'{name} returned {result}'
attempt('umount2 /proc', lambda: call('umount2', b'/proc', 2))
import shutil
if shutil.which('umount'):  # the binary too, where the runtime has it
    umount = subprocess.run(['umount', '/proc'], capture_output=True, text=True)
    report('umount /proc', umount.returncode == 0 or not os.path.exists('/proc/self/status'), umount)
else:
    report('umount /proc', not os.path.exists('/proc/self/status'))
attempt('mount a tmpfs', lambda: call('mount', b'none', b'/mnt/data', b'tmpfs', 0, None))
attempt('ptrace', lambda: call('ptrace', 0, 0, None, None))  # PTRACE_TRACEME needs no privilege: only seccomp stops it
attempt('unshare a user namespace', lambda: call('unshare', 0x10000000))
attempt('unshare a mount namespace', lambda: call('unshare', 0x00020000))
attempt('setns', lambda: call('setns', os.open('/proc/self/ns/net', os.O_RDONLY), 0))
import platform
numbers = {'x86_64': (323, 425, 321, 250), 'aarch64': (282, 425, 280, 219)}[platform.machine()]
attempt('userfaultfd', lambda: call('syscall', numbers[0], 0))
attempt('io_uring_setup', lambda: call('syscall', numbers[1], 1, ctypes.create_string_buffer(120)))
attempt('bpf', lambda: call('syscall', numbers[2], 0, None, 0))
attempt('keyctl', lambda: call('syscall', numbers[3], 0, 0))
"""
    assert_all_blocked(run_code(client, code), 16)


def _tree_memory(pid: int) -> int:
    """Anonymous memory of the server's descendants (the sandbox), measured from outside."""
    total = 0
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return 0
    for child in children:
        try:
            info = child.memory_info()
            total += max(info.rss - info.shared, 0)
        except psutil.Error:
            continue
    return total


def test_sixteen_children_of_400_mb_end_the_run_within_one_total(server, client):
    code = """import os, time
for i in range(16):
    if os.fork() == 0:
        block = bytearray(400 * 1024 * 1024)
        for j in range(0, len(block), 4096):
            block[j] = 1
        time.sleep(60)
        os._exit(0)
for i in range(16):
    os.wait()
print('ESCAPED all sixteen finished')
"""
    peak, done = [0], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], _tree_memory(server.process.pid))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        logs = run_code(client, code)
    finally:
        done.set()
        watcher.join()
    assert "Memory limit exceeded." in logs and "ESCAPED" not in logs, logs
    # The init samples every 20 ms: what is allocated between two samples is the slack.
    assert peak[0] <= MEMORY_CAP + 256 * 1024 * 1024, f"the sandbox held {peak[0] / 2**20:.0f} MiB"
    assert _tree_memory(server.process.pid) < 32 * 1024 * 1024  # nothing of it is left running


def _shmem() -> int:
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("Shmem:"))


def _host_scratch() -> dict[str, set[str]]:
    places = {tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"}
    return {place: set(os.listdir(place)) for place in places if os.path.isdir(place)}


def test_twelve_files_of_50_mb_hit_the_disk_cap_and_nothing_stays_on_the_host(client):
    code = """import os
written = 0
for i in range(12):
    path = f'/tmp/escape-{i}' if i % 2 else os.path.expanduser(f'~/escape-{i}')
    try:
        with open(path, 'wb') as f:
            for _ in range(50):
                f.write(b'x' * (1 << 20))
        written += 1
    except OSError as exc:
        print('stopped after', written, 'files:', exc.strerror)
        break
else:
    print('ESCAPED wrote all twelve')
"""
    before_scratch, before_shmem = _host_scratch(), _shmem()
    logs = run_code(client, code)
    assert "stopped after" in logs and "No space left on device" in logs and "ESCAPED" not in logs, logs
    written = int(logs.split("stopped after ")[1].split()[0])
    assert written < 11  # 512 MB for the run's tmpfs, /tmp and /dev/shm together
    after = _host_scratch()
    for place, names in after.items():
        left = [n for n in names - before_scratch.get(place, set()) if n.startswith("escape-")]
        assert not left, f"the run left {left} in {place}"
    # The run's tmpfs was memory; it is gone with its mount namespace (other processes' shmem may move a little).
    assert _shmem() - before_shmem < 64 * 1024 * 1024


def test_sandboxes_at_once_are_capped_per_process(tmp_path):
    """UNDERSTUDY_SANDBOX_CONCURRENCY bounds what all code interpreters hold together: with a cap of 1,
    three runs started together execute their code one after another (the kernel's monotonic clock is
    the same inside and out, so the intervals they print can be compared)."""
    srv = start_server(tmp_path / "capped", {"UNDERSTUDY_SANDBOX_CONCURRENCY": "1"})
    try:
        with openai.OpenAI(base_url=f"{srv.url}/v1", api_key=new_key(), max_retries=0, timeout=60) as sdk:
            code = "import time\nstart = time.monotonic()\ntime.sleep(0.5)\nprint('interval', start, time.monotonic())"
            logs: list[str] = []
            threads = [threading.Thread(target=lambda: logs.append(run_code(sdk, code))) for _ in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        srv.stop()
    intervals = sorted(tuple(map(float, line.split()[1:3])) for text in logs for line in text.splitlines() if line.startswith("interval"))
    assert len(intervals) == 3, logs
    assert all(earlier[1] <= later[0] for earlier, later in zip(intervals, intervals[1:])), intervals
