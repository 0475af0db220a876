"""The sandbox's init: PID 1 in bubblewrap's namespaces, run as `python -I -u -B -c <this file> <config>`.

It imports nothing of the app (none of it is mounted). In order it: drops to the sandbox user when bwrap ran
as root (no user namespace there: see sandbox_bwrap), unpacks the code and the input files from the bundle
fd into the work dir, forks the code's process, then supervises: it reaps every process (orphans are
re-parented to PID 1), and every 20 ms sums the run's memory from its own /proc and counts processes,
killing them all when the total, the count, the disk (where the tmpfs has no size) or the wall clock is
over. PID 1 ignores default-action signals and SIGKILL from inside the namespace, so the code cannot stop
it; it is not dumpable, so the code cannot write its memory through /proc/1/mem. Last it sends the status
and the new or changed work files to the host through the result fd: a JSON line, then the bytes. The host
treats all of it as untrusted (bounded, names checked).
"""
import ctypes
import errno
import hashlib
import json
import os
import resource
import signal
import stat
import sys
import time

PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP = 1, 4, 24
_PAGE = os.sysconf("SC_PAGE_SIZE")
_CHUNK = 1 << 20


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def main() -> None:
    cfg = json.loads(sys.argv[1])
    libc = ctypes.CDLL(None, use_errno=True)
    keep = {0, 1, 2, cfg["bundle_fd"], cfg["result_fd"]}
    for fd in [int(fd) for fd in os.listdir("/proc/self/fd")]:  # nothing else of the host's or bwrap's
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    if cfg["drop_to"]:
        _drop_privileges(libc, *cfg["drop_to"])
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # a uid change clears bwrap's --die-with-parent: set it again
    libc.prctl(PR_SET_DUMPABLE, 0)
    try:
        code, snapshot, hashes = _unpack(cfg["bundle_fd"], cfg["work"])
    except (OSError, ValueError) as exc:
        _report(cfg, {"status": "inputs", "reason": getattr(exc, "strerror", None) or str(exc)}, [], 0)
        return
    flag_read, flag_write = os.pipe()  # a MemoryError in the code says so here
    pid = os.fork()
    if pid == 0:
        os.close(flag_read)
        os.close(cfg["result_fd"])
        _run_code(libc, code, cfg, flag_write)  # raises SystemExit: the interpreter then exits as a script would
    os.close(flag_write)
    status, peak = _supervise(pid, cfg)
    os.set_blocking(flag_read, False)
    try:
        memory_error = bool(os.read(flag_read, 1))
    except BlockingIOError:
        memory_error = False
    files, skipped = _changed_files(cfg["work"], snapshot, hashes, cfg["max_files"], cfg["max_bytes"])
    _report(cfg, {"status": status, "memory_error": memory_error, "peak": peak, "skipped": skipped}, files,
            sum(size for _, size in files))


def _drop_privileges(libc, uid: int, gid: int) -> None:
    """bwrap ran as root and kept only CAP_SETUID/SETGID/SETPCAP for this: clear the bounding and inheritable
    sets, then become the sandbox user (which clears the rest); refuse to run anything if a capability is left."""
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == errno.EINVAL:
            break  # past the last capability this kernel knows
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    libc.capset(ctypes.byref(_CapHeader(0x20080522, 0)), (_CapData * 2)())  # lowering the inheritable set needs none
    with open("/proc/self/status") as f:
        caps = {k: int(v, 16) for k, _, v in (line.partition(":\t") for line in f) if k.startswith("Cap")}
    if any(caps.values()) or os.getuid() != uid or os.getgid() != gid:
        os._exit(125)


def _unpack(fd: int, work: str):
    """The bundle: a JSON line {"code": bytes, "files": [[name, size], ...]}, the code, then each file's bytes."""
    hashes = {}
    with open(fd, "rb") as bundle:
        header = json.loads(bundle.readline(1 << 20))
        code = bundle.read(header["code"]).decode("utf-8", "replace")
        for name, size in header["files"]:
            path = os.path.join(work, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            digest = hashlib.sha256()
            with open(path, "wb") as out:
                while size > 0:
                    chunk = bundle.read(min(size, _CHUNK))
                    if not chunk:
                        raise ValueError("the input bundle is short")
                    out.write(chunk)
                    digest.update(chunk)
                    size -= len(chunk)
            hashes[name] = digest.digest()
    return code, _snapshot(work), hashes


def _run_code(libc, code: str, cfg: dict, flag_write: int) -> None:
    libc.prctl(PR_SET_DUMPABLE, 1)  # the code's processes are ordinary ones (their own /proc/self/fd, ...)
    for name, (soft, hard) in cfg["limits"].items():
        kind = getattr(resource, name)
        ceiling = resource.getrlimit(kind)[1]
        if ceiling != resource.RLIM_INFINITY:
            soft, hard = min(soft, ceiling), min(hard, ceiling)
        resource.setrlimit(kind, (soft, hard))
    os.nice(10)  # yields to the supervisor, even under a fork bomb (it counts them)
    import linecache, traceback, types
    lines = code.splitlines(True)
    linecache.cache["<code>"] = (sum(map(len, lines)), None, lines, "<code>")  # tracebacks show the source
    main = types.ModuleType("__main__")
    sys.modules["__main__"], sys.argv = main, ["<code>"]
    sys.path[:] = [cfg["work"], *sys.path, *cfg["site_packages"]]  # as a script run from the work dir
    try:
        exec(compile(code, "<code>", "exec"), main.__dict__)
    except SystemExit:
        raise
    except BaseException as exc:
        if isinstance(exc, MemoryError):
            os.write(flag_write, b"M")
        try:
            traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)  # minus this frame
        except BaseException:
            os.write(2, repr(exc).encode(errors="replace") + b"\n")
        raise SystemExit(1)
    raise SystemExit(0)


def _supervise(pid: int, cfg: dict):
    """Waits for the code's process, enforcing the run's totals; then kills whatever is left in the namespace."""
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD])  # so sigtimedwait wakes on a child's exit
    deadline = time.monotonic() + cfg["timeout"]
    status, peak = None, 0
    while status is None:
        status = _reap(pid)
        if status is not None:
            break
        try:
            count, memory = _usage()
            disk = _disk_used(cfg["disk_paths"]) if cfg["disk"] else 0
        except OSError:
            status = "supervisor"  # cannot measure: stop rather than run unmeasured
            break
        peak = max(peak, memory)
        if memory > cfg["memory"]:
            status = "memory"
        elif count > cfg["max_procs"]:
            status = "processes"
        elif cfg["disk"] and disk > cfg["disk"]:
            status = "disk"
        elif time.monotonic() > deadline:
            status = "timeout"
        else:
            signal.sigtimedwait([signal.SIGCHLD], cfg["interval"])
    try:
        os.kill(-1, signal.SIGKILL)  # from PID 1: every other process in the namespace
    except ProcessLookupError:
        pass
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    return status, peak


def _reap(pid: int):
    while True:
        try:
            done, wait_status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return "vanished"
        if done == 0:
            return None
        if done == pid:
            return os.waitstatus_to_exitcode(wait_status)


def _usage():
    """Processes in the namespace, and their memory: resident minus file-backed and shared pages (the tmpfs
    is bounded by its size; file pages are the read-only runtime's). statm needs no ptrace access, so a
    process cannot hide from it; pages shared copy-on-write after a fork count once per process (over, never under)."""
    count = total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/statm", "rb") as f:
                fields = f.read().split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited meanwhile
        count += 1
        total += max(int(fields[1]) - int(fields[2]), 0) * _PAGE
    return count, total


def _disk_used(paths) -> int:
    used = 0
    for path in paths:
        st = os.statvfs(path)
        used += (st.f_blocks - st.f_bfree) * st.f_frsize
    return used


def _snapshot(work: str) -> dict:
    return {rel: (st.st_size, st.st_mtime_ns, st.st_ino) for rel, st in _files(work)}


def _files(work: str):
    """(relative path, stat) of regular files under `work`, never through a symlink."""
    for dirpath, dirnames, filenames, dirfd in os.fwalk(work, follow_symlinks=False):
        dirnames.sort()
        prefix = os.path.relpath(dirpath, work)
        for name in sorted(filenames):
            try:
                st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                yield (name if prefix == "." else f"{prefix}/{name}"), st


def _changed_files(work: str, snapshot: dict, hashes: dict, max_files: int, max_bytes: int):
    """New or changed files, in path order, within the count and byte caps; how many more there were."""
    files, skipped, room = [], 0, max_bytes
    for rel, st in _files(work):
        before = snapshot.get(rel)
        if before == (st.st_size, st.st_mtime_ns, st.st_ino) and (rel not in hashes or _digest(work, rel) == hashes[rel]):
            continue
        if len(files) >= max_files or st.st_size > room:
            skipped += 1
            continue
        room -= st.st_size
        files.append((rel, st.st_size))
    return files, skipped


def _digest(work: str, rel: str):
    digest = hashlib.sha256()
    try:
        with open(os.path.join(work, rel), "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return digest.digest()


def _report(cfg: dict, header: dict, files: list, total: int) -> None:
    """Status and files to the host; a file that cannot be read whole is padded so the framing holds."""
    header["files"] = [[rel, size] for rel, size in files]
    with open(cfg["result_fd"], "wb") as out:
        out.write(json.dumps(header).encode() + b"\n")
        for rel, size in files:
            left = size
            try:
                with open(os.path.join(cfg["work"], rel), "rb") as f:
                    while left > 0 and (chunk := f.read(min(left, _CHUNK))):
                        out.write(chunk)
                        left -= len(chunk)
            except OSError:
                pass
            out.write(b"\0" * left)


if __name__ == "__main__":
    main()
