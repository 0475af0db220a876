"""A kernel-enforced memory total where cgroup v2 allows it: one group per run, with memory.max.

Used where this process may create cgroup v2 groups that have the memory controller: beside its own group
(the parent hands memory to its children and is writable: a systemd unit with Delegate=yes, a user
session's app.slice) or below its own when that is the root of a cgroup namespace (a container). On
cgroup v1, or a hybrid layout whose v2 half has no controllers (this project's CI machines), there is none,
and the sandbox's init alone holds the total (sandbox_init sums /proc every 20 ms). The init measures in
either case; the group makes the kernel stop an allocation at the cap rather than up to 20 ms later, and
counts the tmpfs too (its pages are charged to the group), so memory.max is memory plus disk.
Nothing here is required: any failure leaves the run to the init.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time

_lock = threading.Lock()
_base: list[str | None] = []  # probed once: [] until then
# Run by /bin/sh before bwrap: joins the group (cgroup.procs takes "the writer"), then becomes bwrap.
_JOIN = '{ echo $$ > "$0/cgroup.procs"; } 2>/dev/null; exec "$@"'


def base() -> str | None:
    """The directory new run groups go under, or None."""
    with _lock:
        if not _base:
            try:
                _base.append(find_base("/proc/self/mountinfo", "/proc/self/cgroup"))
            except (OSError, ValueError):
                _base.append(None)
        return _base[0]


def find_base(mountinfo: str, cgroup: str) -> str | None:
    with open(mountinfo) as f:
        mount = next((line.split()[4] for line in f if " - cgroup2 " in line), None)
    with open(cgroup) as f:
        own = next((line[3:].strip() for line in f if line.startswith("0::")), None)
    if mount is None or own is None:
        return None
    mine = os.path.normpath(mount + "/" + own)
    candidate = mine if own == "/" else os.path.dirname(mine)  # a group with processes has no child groups but at the root
    if own == "/" and "memory" in _read(candidate, "cgroup.controllers").split():
        with contextlib.suppress(OSError):
            _write(candidate, "cgroup.subtree_control", "+memory")
    if "memory" in _read(candidate, "cgroup.subtree_control").split() and os.access(candidate, os.W_OK):
        return candidate
    return None


class RunGroup:
    """One run's group (or nothing, where there is no base)."""

    def __init__(self, path: str | None) -> None:
        self.path = path

    @classmethod
    def create(cls, limit_bytes: int, under: str | None) -> "RunGroup":
        if under is None:
            return cls(None)
        path = os.path.join(under, f"understudy-sandbox-{secrets.token_hex(6)}")
        try:
            os.mkdir(path)
        except OSError:
            return cls(None)
        group = cls(path)
        try:
            _write(path, "memory.max", str(limit_bytes))
            with contextlib.suppress(FileNotFoundError):
                _write(path, "memory.swap.max", "0")
        except OSError:
            group.remove()
            return cls(None)
        return group

    def wrap(self, command: list[str]) -> list[str]:
        return ["/bin/sh", "-c", _JOIN, self.path, *command] if self.path else command

    def oom_killed(self) -> bool:
        if not self.path:
            return False
        with contextlib.suppress(OSError, ValueError):
            events = dict(line.split() for line in _read(self.path, "memory.events").splitlines())
            return int(events.get("oom_kill", 0)) > 0
        return False

    def remove(self) -> None:
        """Its processes are gone when the run returns; the kernel may take a moment to let the group go."""
        for _ in range(50):
            if not self.path:
                return
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)


def _read(directory: str, name: str) -> str:
    try:
        with open(os.path.join(directory, name)) as f:
            return f.read()
    except OSError:
        return ""


def _write(directory: str, name: str, value: str) -> None:
    with open(os.path.join(directory, name), "w") as f:
        f.write(value)
