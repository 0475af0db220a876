"""The `code_interpreter` sandbox: model-written Python runs in a throwaway subprocess, never in the server.

Isolation comes from Linux namespaces through util-linux `unshare` (no new dependency): a user namespace
(so even a root server hands the code no capabilities outside it: it cannot lift its limits or leave its
other namespaces), a network namespace (a loopback of its own and nothing else: no DNS, no internet, not
even the host's 127.0.0.1) and a PID namespace whose init is our launcher, so that when the launcher ends
or is killed the kernel kills every process the code started, even ones that left the process group.
Limits are rlimits set by the launcher before the code runs; a wall-clock timeout kills the whole tree.
Where network isolation cannot be had, `run_python` refuses instead of running the code unconfined.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import PurePosixPath

MAX_FILES = 20
LOG_HEAD, LOG_TAIL = 15_000, 5_000  # bytes of output kept from the start and the end (the traceback)
NOFILE, NPROC = 256, 128  # processes: RLIMIT_NPROC, and the launcher counts them too (uid 0 is exempt from it)
_PATH = "/usr/local/bin:/usr/bin:/bin"
_UNAVAILABLE = "The code interpreter sandbox is unavailable on this server: {}."
_TREE = ("--pid", "--fork", "--kill-child", "--mount-proc")
_USER = ("--user", "--map-root-user")

# The launcher is the first process in the namespaces (PID 1 when there is a PID namespace). It forks the
# code's process rather than becoming it: PID 1 ignores default-action signals (SIGXCPU, even a SIGKILL it
# sends itself) and its exit is what makes the kernel sweep the namespace. The code's exit status and
# whether it ran out of memory come back through small files beside (not in) the working directory.
_LAUNCHER = r'''
import json, os, resource, sys
cfg = json.loads(sys.argv[1])
pid = os.fork()
if pid == 0:
    for name, (soft, hard) in cfg["limits"].items():
        kind = getattr(resource, name)
        ceiling = resource.getrlimit(kind)[1]
        if ceiling != resource.RLIM_INFINITY:
            soft, hard = min(soft, ceiling), min(hard, ceiling)
        resource.setrlimit(kind, (soft, hard))
    os.nice(10)  # yields to the server, and to this launcher even under a fork bomb (it counts them)
    import linecache, traceback, types
    with open(cfg["code"], encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines(True)
    linecache.cache["<code>"] = (sum(map(len, lines)), None, lines, "<code>")  # tracebacks show the source
    main = types.ModuleType("__main__")
    sys.modules["__main__"], sys.argv = main, ["<code>"]
    sys.path.insert(0, os.getcwd())  # like a script run from the working dir: input .py files import
    try:
        exec(compile("".join(lines), "<code>", "exec"), main.__dict__)
    except SystemExit:
        raise
    except BaseException as exc:
        if isinstance(exc, MemoryError):
            try:
                os.close(os.open(cfg["memory_flag"], os.O_CREAT | os.O_WRONLY, 0o600))
            except OSError:
                pass
        try:
            traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)  # minus this frame
        except BaseException:
            os.write(2, repr(exc).encode(errors="replace") + b"\n")
        sys.exit(1)
else:
    import signal
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD])  # so sigtimedwait wakes on a child's exit
    while True:
        done, status = os.waitpid(-1, os.WNOHANG)  # orphans too: they are re-parented to PID 1
        if done == pid:
            code = os.waitstatus_to_exitcode(status)
            break
        if done:
            continue
        # RLIMIT_NPROC does not bind uid 0, so count the namespace's own /proc: exiting kills them all.
        if cfg["max_procs"] and sum(name.isdigit() for name in os.listdir("/proc")) > cfg["max_procs"]:
            code = "too many processes"
            break
        signal.sigtimedwait([signal.SIGCHLD], 0.02)
    with open(cfg["status"], "w") as f:
        f.write(str(code))
    code = code if isinstance(code, int) else -signal.SIGKILL
    os._exit(code if code >= 0 else 128 - code)
'''
_PROBE = "print('isolated' if [l.split(':')[0].strip() for l in open('/proc/self/net/dev').read().splitlines()[2:]] == ['lo'] else 'not isolated')"


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
_isolation: tuple[tuple[str, ...] | None, str] | None = None  # (unshare command + flags, or None; why)


def sandbox_available() -> tuple[bool, str]:
    """Whether code can run with no network here, and how (or why not). Probed once, then cached."""
    command, why = _probed()
    return command is not None, why


def _probed() -> tuple[tuple[str, ...] | None, str]:
    global _isolation
    with _lock:
        if _isolation is None:
            _isolation = _probe(shutil.which("unshare"))
        return _isolation


def _probe(unshare: str | None) -> tuple[tuple[str, ...] | None, str]:
    """Tries the strongest set of namespaces first, running the real launcher, and keeps the first that works."""
    if not sys.platform.startswith("linux"):
        return None, "it needs Linux namespaces"
    if not unshare:
        return None, "the `unshare` command (util-linux) is not installed"
    root_only = os.geteuid() == 0  # without a user namespace only root may create the others
    candidates = [(_USER + ("--net",) + _TREE, "user, network and PID namespaces")]
    if root_only:
        candidates.append((("--net",) + _TREE, "network and PID namespaces"))
    candidates.append((_USER + ("--net",), "user and network namespaces"))
    if root_only:
        candidates.append((("--net",), "a network namespace"))
    failure = "no namespace could be created"
    for flags, label in candidates:
        try:
            root = _prepare(_PROBE, {})
        except ValueError as exc:
            return None, f"no temporary directory ({exc})"
        try:
            proc = subprocess.run(_command((unshare, *flags), root, {}), cwd=os.path.join(root, "work"), env=_env(root),
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=20, start_new_session=True)
        except (OSError, subprocess.TimeoutExpired) as exc:
            failure = f"the isolation probe failed ({exc})"
            continue
        finally:
            _remove(root)
        if proc.returncode == 0 and proc.stdout.strip() == b"isolated":
            return (unshare, *flags), f"code runs in its own {label}"
        said = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
        failure = f"cannot isolate the network ({said[-1] if said else f'status {proc.returncode}'})"
    return None, failure


async def run_python(code: str, *, inputs: list[SandboxFile] = (), timeout_s: float = 30.0, memory_mb: int = 512,
                     max_output_bytes: int = 50 * 1024 * 1024) -> SandboxResult:
    """Runs `code` in the sandbox with `inputs` in its working dir; returns its output, new files and fate."""
    command, why = _isolation if _isolation is not None else await asyncio.to_thread(_probed)
    if command is None:
        return SandboxResult("", [], _UNAVAILABLE.format(why.rstrip(".")), None)
    try:
        named = {_safe_name(f.name): bytes(f.data) for f in inputs}
        root = await asyncio.to_thread(_prepare, code, named)
    except ValueError as exc:
        return SandboxResult("", [], str(exc), None)
    try:
        return await _execute(command, root, named, timeout_s, memory_mb, max_output_bytes)
    finally:
        await asyncio.to_thread(_remove, root)


async def _execute(command, root: str, inputs: dict[str, bytes], timeout_s: float, memory_mb: int,
                   max_output_bytes: int) -> SandboxResult:
    cpu = math.ceil(timeout_s) + 1  # a backstop: the wall clock normally ends the run first
    limits = {"RLIMIT_AS": memory_mb * 1024 * 1024, "RLIMIT_CPU": (cpu, cpu + 1), "RLIMIT_FSIZE": max_output_bytes,
              "RLIMIT_NOFILE": NOFILE, "RLIMIT_NPROC": NPROC, "RLIMIT_CORE": 0}
    try:
        transport, run = await asyncio.get_running_loop().subprocess_exec(
            _Run, *_command(command, root, limits), cwd=os.path.join(root, "work"), env=_env(root),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        return SandboxResult("", [], _UNAVAILABLE.format(f"it could not start ({exc})"), None)
    timed_out = False
    try:
        await asyncio.wait_for(asyncio.shield(run.exited), timeout_s)
    except TimeoutError:
        timed_out = True
    finally:
        # The group holds unshare and the launcher; killing them ends the PID namespace and all in it.
        # Without a PID namespace this also sweeps up whatever the code left running in the group.
        if transport.get_returncode() is None or "--pid" not in command:
            _kill_group(transport.get_pid())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(run.exited), 3)
        with contextlib.suppress(TimeoutError):  # only stragglers outside a PID namespace hold it longer
            await asyncio.wait_for(asyncio.shield(run.closed), 1)
        transport.close()
    status, out_of_memory, files, skipped = await asyncio.to_thread(_outcome, root, inputs, max_output_bytes)
    exit_code = status if isinstance(status, int) else transport.get_returncode()
    logs = run.text()
    if skipped:
        logs += f"\n[{skipped} more output file(s) not returned: at most {MAX_FILES} files, {max_output_bytes} bytes]"
    if timed_out or exit_code is None:
        return SandboxResult(logs, files, f"Execution timed out after {timeout_s:g} s.", None)
    if status == "too many processes":
        return SandboxResult(logs, files, f"Too many processes (the limit is {NPROC}).", None)
    if out_of_memory or exit_code == -signal.SIGKILL:
        error = "Memory limit exceeded."  # a MemoryError, or the kernel's OOM killer (we did not kill it)
    elif exit_code == -signal.SIGXCPU:
        error = "CPU time limit exceeded."
    elif exit_code < 0:
        error = f"Killed by signal {_signal_name(-exit_code)}."
    else:
        error = f"Exited with status {exit_code}." if exit_code else None
    return SandboxResult(logs, files, error, exit_code)


def _command(command, root: str, limits: dict) -> list[str]:
    cfg = {"code": os.path.join(root, "code.py"), "status": os.path.join(root, "status"),
           "memory_flag": os.path.join(root, "memory"), "max_procs": NPROC if "--mount-proc" in command else 0,
           "limits": {k: list(v) if isinstance(v, tuple) else [v, v] for k, v in limits.items()}}
    # -I: no user site, no PYTHON* variables, no cwd on sys.path; -u: output in the order it was printed.
    return [*command, "--", sys.executable, "-I", "-u", "-B", "-c", _LAUNCHER, json.dumps(cfg)]


def _env(root: str) -> dict[str, str]:
    """A minimal environment: nothing of the server's (no keys, no UNDERSTUDY_*), its own HOME and TMPDIR."""
    return {"PATH": _PATH, "HOME": os.path.join(root, "home"), "TMPDIR": os.path.join(root, "tmp"),
            "LANG": "C.UTF-8", "MPLBACKEND": "Agg",
            # one BLAS thread: each thread's reserved address space counts against RLIMIT_AS
            "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _safe_name(name: str) -> str:
    path = PurePosixPath(name or "")
    parts = [p for p in path.parts if p != "."]
    if not parts or path.is_absolute() or ".." in parts or "\x00" in name:
        raise ValueError(f"Invalid input file name {name!r}: it must be a relative path inside the working directory.")
    return "/".join(parts)


def _prepare(code: str, inputs: dict[str, bytes]) -> str:
    """root/{code.py, work/ (cwd: inputs in, outputs out), home/, tmp/}; status files land in root."""
    root = tempfile.mkdtemp(prefix="understudy-sandbox-")
    try:
        for sub in ("work", "home", "tmp"):
            os.mkdir(os.path.join(root, sub))
        with open(os.path.join(root, "code.py"), "w", encoding="utf-8", errors="replace") as f:
            f.write(code)
        for name, data in inputs.items():
            path = os.path.join(root, "work", name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
    except OSError as exc:
        _remove(root)
        raise ValueError(f"Could not write the input files: {exc.strerror or exc}.") from exc
    return root


def _outcome(root: str, inputs: dict[str, bytes], max_bytes: int):
    """What the launcher reported (exit code or why it stopped the code), a MemoryError?, the output files."""
    status = None
    with contextlib.suppress(OSError, UnicodeDecodeError):  # the code could have put a FIFO there: no blocking
        with open(os.open(os.path.join(root, "status"), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)) as f:
            if stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                text = f.read(64).strip()
                status = int(text) if text.lstrip("-").isdigit() else text
    return (status, os.path.exists(os.path.join(root, "memory")),
            *_collect(os.path.join(root, "work"), inputs, max_bytes))


def _collect(work: str, inputs: dict[str, bytes], max_bytes: int) -> tuple[list[SandboxFile], int]:
    """New or changed regular files under `work`, by path; never through a symlink (O_NOFOLLOW, dir fds)."""
    files: list[SandboxFile] = []
    skipped, room = 0, max_bytes
    for dirpath, dirnames, filenames, dirfd in os.fwalk(work, follow_symlinks=False):
        dirnames.sort()
        prefix = os.path.relpath(dirpath, work)
        for name in sorted(filenames):
            rel = name if prefix == "." else f"{prefix}/{name}"
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dirfd)
            except OSError:  # a symlink, a socket, unreadable
                continue
            with open(fd, "rb") as f:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    continue
                if rel in inputs and st.st_size == len(inputs[rel]) and f.read() == inputs[rel]:
                    continue
                if len(files) >= MAX_FILES or st.st_size > room:
                    skipped += 1
                    continue
                f.seek(0)
                data = f.read(room + 1)
            if len(data) > room:
                skipped += 1
                continue
            room -= len(data)
            files.append(SandboxFile(rel, data))
    return files, skipped


def _remove(root: str) -> None:
    """Deletes the run's directories, even where the code took its own permissions away."""
    with contextlib.suppress(OSError, NotImplementedError):
        os.chmod(root, 0o700, follow_symlinks=False)
    for _, dirnames, _, dirfd in os.fwalk(root, follow_symlinks=False):
        for name in dirnames:
            with contextlib.suppress(OSError, ValueError, NotImplementedError):
                os.chmod(name, 0o700, dir_fd=dirfd, follow_symlinks=False)  # never through a symlink
    shutil.rmtree(root, ignore_errors=True)


class _Run(asyncio.SubprocessProtocol):
    """The launcher's process: its exit, and the head and tail of its output (the traceback is at the end).

    A protocol rather than `asyncio.subprocess.Process`, whose wait() also waits for the pipe to close,
    which a process that escaped the group could hold open for ever."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.exited, self.closed = loop.create_future(), loop.create_future()
        self.head, self.tail, self.total = bytearray(), bytearray(), 0

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self.total += len(data)
        room = LOG_HEAD - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        self.tail += data
        del self.tail[:-LOG_TAIL]

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def text(self) -> str:
        omitted = self.total - len(self.head) - len(self.tail)
        if omitted <= 0:
            return (self.head + self.tail).decode("utf-8", "replace")
        return (f"{self.head.decode('utf-8', 'replace')}\n[... {omitted} bytes of output truncated ...]\n"
                f"{self.tail.decode('utf-8', 'replace')}")


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
