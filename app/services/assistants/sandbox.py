"""The `code_interpreter` sandbox: model-written Python runs in a throwaway bubblewrap sandbox, never in the server.

bwrap gives the code a private root (sandbox_bwrap: the read-only runtime, a tmpfs work dir, no host files,
sockets or network), an unprivileged uid, no capabilities, no_new_privs and a seccomp filter
(sandbox_seccomp). Inside, our init (sandbox_init) is PID 1: it runs the code, holds the run's processes
together to one memory total, one process count and the wall clock, and hands back the status and the
new files through a pipe. One disk budget is the tmpfs sizes; everything the run wrote dies with its mount
namespace, and nothing of it is ever on the host's disk. Where bwrap is missing or cannot build the
sandbox, `run_python` refuses (saying why) instead of running the code unconfined.

`work_dir` is for a caller that keeps a work dir between runs (containers): that host dir is bound
read-write instead of the fresh tmpfs work dir, and its files stay; the caller bounds its size.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import PurePosixPath

from app.services.assistants import sandbox_bwrap, sandbox_cgroup
from app.services.assistants.sandbox_bwrap import SANDBOX_GID, SANDBOX_UID
from app.services.assistants.sandbox_pipes import Output, ResultPipe, bundle, memfd, parse_results
from app.services.assistants.sandbox_seccomp import bpf_program

MAX_FILES = 20
NOFILE, NPROC = 256, 128  # open files per process; processes in the run (RLIMIT_NPROC, and the init counts them)
SHM_BYTES = 64 * 1024 * 1024  # /dev/shm's share of the disk budget
POLL_S = 0.02  # how often the init measures the run
GRACE_S = 10.0  # past the timeout, for start-up and handing back files, before the host kills the sandbox
_PATH = "/usr/local/bin:/usr/bin:/bin"
_UNAVAILABLE = "The code interpreter sandbox is unavailable on this server: {}."
with open(os.path.join(os.path.dirname(__file__), "sandbox_init.py"), encoding="utf-8") as _f:
    _INIT = _f.read()  # the sandbox's init, handed to `python -c` (none of the app is mounted there)
# Run in the sandbox by the probe: what must hold before any code runs there.
_PROBE = """import os
checks = {
    'a network besides the loopback': [l.split(':')[0].strip() for l in open('/proc/self/net/dev').read().splitlines()[2:]] != ['lo'],
    'uid 0': os.getuid() == 0 or os.getgid() == 0,
    'capabilities': any(int(l.split()[1], 16) for l in open('/proc/self/status') if l.startswith(('CapEff', 'CapPrm'))),
    'no seccomp filter': 'Seccomp:\t2' not in open('/proc/self/status').read(),
    'the host /etc': os.path.exists('/etc/passwd'),
}
failed = [name for name, bad in checks.items() if bad]
print('isolated' if not failed else 'not isolated: ' + ', '.join(failed))
"""


@dataclass
class SandboxFile:
    name: str  # path relative to the working dir, e.g. "plot.png" or "out/data.csv"
    data: bytes


@dataclass
class SandboxResult:
    logs: str  # stdout + stderr as printed (head and tail kept when long, saying so)
    files: list[SandboxFile]  # created or changed under the working dir, capped in count and bytes
    error: str | None  # None on success, else a short reason (a traceback is in logs)
    exit_code: int | None


_lock = threading.Lock()
_isolation: tuple[str | None, str] | None = None  # (bwrap's path, or None; how it isolates, or why not)


def sandbox_available() -> tuple[bool, str]:
    """Whether code can be sandboxed here, and how (or why not). Probed once, then cached."""
    bwrap, why = _probed()
    return bwrap is not None, why


def _probed() -> tuple[str | None, str]:
    global _isolation
    with _lock:
        if _isolation is None:
            _isolation = _probe(shutil.which("bwrap"))
        return _isolation


def _probe(bwrap: str | None) -> tuple[str | None, str]:
    """Builds a real sandbox and runs checks inside it; a bwrap that cannot make one is no sandbox."""
    if not sys.platform.startswith("linux"):
        return None, "it needs Linux namespaces"
    if not bwrap:
        return None, "bubblewrap (`bwrap`) is not installed"
    try:
        sandbox_bwrap.features(bwrap)
        bpf_program()
    except (OSError, ImportError, subprocess.SubprocessError) as exc:
        return None, f"its seccomp filter or bwrap cannot be loaded ({exc})"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # its own event loop, whoever calls
        result = pool.submit(asyncio.run, _execute(bwrap, _PROBE, {}, timeout_s=20, memory_mb=256, disk_mb=16,
                                                   max_output_bytes=1024, work_dir=None)).result()
    if result.error is None and result.logs.strip() == "isolated":
        mode = "as root's nobody, no user namespace" if sandbox_bwrap.privileged() else "in a user namespace"
        return bwrap, f"code runs in bubblewrap: its own root, uid {SANDBOX_UID} ({mode}), no network, seccomp"
    prefix = _UNAVAILABLE.split("{}")[0]
    if result.error and result.error.startswith(prefix):  # bwrap's own words
        return None, result.error[len(prefix):].rstrip(".")
    said = (result.logs.strip().splitlines() or [result.error or "no output"])[-1]
    return None, f"bwrap could not build the sandbox ({said})"


async def run_python(code: str, *, inputs: list[SandboxFile] = (), timeout_s: float = 30.0, memory_mb: int = 512,
                     disk_mb: int = 512, max_output_bytes: int = 50 * 1024 * 1024,
                     work_dir: str | None = None) -> SandboxResult:
    """Runs `code` in the sandbox with `inputs` in its work dir; returns its output, new files and fate.

    memory_mb bounds all its processes together (and each one's address space), disk_mb everything it
    writes (work dir, /tmp, /dev/shm). With `work_dir` (a host dir) that dir is the work dir and keeps its files."""
    bwrap, why = _isolation if _isolation is not None else await asyncio.to_thread(_probed)
    if bwrap is None:
        return SandboxResult("", [], _UNAVAILABLE.format(why.rstrip(".")), None)
    try:
        named = {_safe_name(f.name): bytes(f.data) for f in inputs}
    except ValueError as exc:
        return SandboxResult("", [], str(exc), None)
    return await _execute(bwrap, code, named, timeout_s=timeout_s, memory_mb=memory_mb, disk_mb=disk_mb,
                          max_output_bytes=max_output_bytes, work_dir=work_dir)


async def _execute(bwrap: str, code: str, inputs: dict[str, bytes], *, timeout_s: float, memory_mb: int, disk_mb: int,
                   max_output_bytes: int, work_dir: str | None) -> SandboxResult:
    memory, disk = memory_mb * 1024 * 1024, disk_mb * 1024 * 1024
    shm = min(SHM_BYTES, disk // 8)
    cpu = math.ceil(timeout_s) + 1  # a backstop: the wall clock normally ends the run first
    limits = {"RLIMIT_AS": memory, "RLIMIT_CPU": (cpu, cpu + 1), "RLIMIT_FSIZE": max_output_bytes,
              "RLIMIT_NOFILE": NOFILE, "RLIMIT_NPROC": NPROC, "RLIMIT_CORE": 0}
    if work_dir and sandbox_bwrap.privileged():
        os.chown(work_dir, SANDBOX_UID, SANDBOX_GID)  # the sandbox user writes there
    fds = []
    try:
        packed = memfd(bundle(code, inputs))
        fds.append(packed)
        seccomp = memfd([bpf_program()])
        fds.append(seccomp)
        result_read, result_write = os.pipe()
        fds += [result_read, result_write]
    except OSError as exc:
        for fd in fds:
            os.close(fd)
        return SandboxResult("", [], _UNAVAILABLE.format(f"it could not start ({exc})"), None)
    rt = sandbox_bwrap.runtime()
    cfg = {"bundle_fd": packed, "result_fd": result_write, "work": sandbox_bwrap.WORK, "timeout": timeout_s,
           "memory": memory, "max_procs": NPROC, "interval": POLL_S, "max_files": MAX_FILES, "max_bytes": max_output_bytes,
           "disk": 0 if sandbox_bwrap.sizes_enforced(bwrap) else disk, "disk_paths": [sandbox_bwrap.SCRATCH, sandbox_bwrap.SHM],
           "drop_to": [SANDBOX_UID, SANDBOX_GID] if sandbox_bwrap.privileged() else None,
           "site_packages": [inside for _, inside in rt.site_packages],
           "limits": {k: list(v) if isinstance(v, tuple) else [v, v] for k, v in limits.items()}}
    # -I: no user site, no PYTHON* variables, no cwd on sys.path; -u: output in the order it was printed.
    argv = [rt.python, "-I", "-u", "-B", "-c", _INIT, json.dumps(cfg)]
    command = sandbox_bwrap.command(bwrap, seccomp_fd=seccomp, disk_bytes=disk, shm_bytes=shm, work_dir=work_dir, argv=argv)
    group = sandbox_cgroup.RunGroup.create(memory + disk, sandbox_cgroup.base())  # where the kernel can hold the total too
    try:
        result = await _supervise(group.wrap(command), rt, (packed, seccomp, result_write), result_read,
                                  timeout_s=timeout_s, max_output_bytes=max_output_bytes, disk_mb=disk_mb)
        if result.error and result.error.startswith("The sandbox stopped without a result") and group.oom_killed():
            result.error = "Memory limit exceeded."  # the kernel's OOM killer took the init too
        return result
    finally:
        await asyncio.to_thread(group.remove)


async def _supervise(command: list[str], rt, pass_fds: tuple[int, ...], result_read: int, *, timeout_s: float,
                     max_output_bytes: int, disk_mb: int) -> SandboxResult:
    """Starts bwrap, reads its output and the init's result, and kills it all past the timeout's grace."""
    loop = asyncio.get_running_loop()
    try:
        try:
            transport, run = await loop.subprocess_exec(
                Output, *command, env=_env(rt), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True, pass_fds=pass_fds)
        finally:
            for fd in pass_fds:
                os.close(fd)
    except OSError as exc:
        os.close(result_read)
        return SandboxResult("", [], _UNAVAILABLE.format(f"it could not start ({exc})"), None)
    reader = ResultPipe(loop, max_output_bytes + (1 << 20))
    await loop.connect_read_pipe(lambda: reader, open(result_read, "rb", buffering=0))
    killed = False
    try:
        await asyncio.wait_for(asyncio.shield(run.exited), timeout_s + GRACE_S)
    except TimeoutError:
        killed = True
    finally:
        if transport.get_returncode() is None:
            _kill_group(transport.get_pid())  # bwrap; the sandbox's init dies with it (--die-with-parent)
        for future, wait in ((run.exited, 3), (reader.closed, 3), (run.closed, 1)):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(future), wait)
        reader.close()
        transport.close()
    return _outcome(reader.data, run.text(), killed, transport.get_returncode(), timeout_s, disk_mb)


def _outcome(data: bytes, logs: str, killed: bool, returncode: int | None, timeout_s: float, disk_mb: int) -> SandboxResult:
    """What the init reported, in the words of SandboxResult."""
    header, found = parse_results(data, MAX_FILES, _safe_name)
    files = [SandboxFile(name, content) for name, content in found]
    if header is None:
        if killed:
            return SandboxResult(logs, [], f"Execution timed out after {timeout_s:g} s.", None)
        said = [line for line in logs.splitlines() if line.startswith("bwrap:")]
        if said or returncode == 125:
            return SandboxResult("", [], _UNAVAILABLE.format(f"bwrap could not build the sandbox ({(said or ['privileges not dropped'])[-1]})"), None)
        return SandboxResult(logs, [], f"The sandbox stopped without a result (status {returncode}).", None)
    status = header.get("status")
    if header.get("skipped"):
        logs += f"\n[{header['skipped']} more output file(s) not returned: at most {MAX_FILES} files, in total the output cap]"
    if status == "inputs":
        return SandboxResult(logs, [], f"Could not write the input files: {header.get('reason')}.", None)
    if status == "timeout":
        return SandboxResult(logs, files, f"Execution timed out after {timeout_s:g} s.", None)
    if status == "memory":
        return SandboxResult(logs, files, "Memory limit exceeded.", None)
    if status == "processes":
        return SandboxResult(logs, files, f"Too many processes (the limit is {NPROC}).", None)
    if status == "disk":
        return SandboxResult(logs, files, f"Disk limit exceeded ({disk_mb} MB).", None)
    if not isinstance(status, int) or isinstance(status, bool):
        return SandboxResult(logs, files, "The sandbox could not supervise the run.", None)
    if header.get("memory_error") or status == -signal.SIGKILL:
        error = "Memory limit exceeded."  # a MemoryError, or the kernel's OOM killer
    elif status == -signal.SIGXCPU:
        error = "CPU time limit exceeded."
    elif status < 0:
        error = f"Killed by signal {_signal_name(-status)}."
    else:
        error = f"Exited with status {status}." if status else None
    return SandboxResult(logs, files, error, status)


def _env(rt) -> dict[str, str]:
    """A minimal environment: nothing of the server's (no keys, no UNDERSTUDY_*)."""
    return {"PATH": _PATH, "HOME": sandbox_bwrap.HOME, "TMPDIR": "/tmp", "LANG": "C.UTF-8", "MPLBACKEND": "Agg",
            "USER": "sandbox", "LOGNAME": "sandbox",
            # the packages for a `python` the code starts itself (the init adds them to its own sys.path)
            "PYTHONPATH": ":".join(inside for _, inside in rt.site_packages),
            # one BLAS thread: each thread's reserved address space counts against RLIMIT_AS
            "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _safe_name(name: str) -> str:
    path = PurePosixPath(name or "")
    parts = [p for p in path.parts if p != "."]
    if not parts or path.is_absolute() or ".." in parts or "\x00" in name:
        raise ValueError(f"Invalid input file name {name!r}: it must be a relative path inside the working directory.")
    return "/".join(parts)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
