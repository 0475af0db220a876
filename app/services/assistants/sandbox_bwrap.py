"""The sandbox's private root, as bubblewrap (`bwrap`) arguments.

What the code sees: the OS's /usr read-only (the interpreter's shared libraries, and tools a script may
call, `sleep`, `ls`), the server's interpreter and stdlib read-only where they live outside /usr (pyenv),
and the venv's site-packages read-only at /opt/understudy/site-packages: the packages, not the venv, so
nothing can be planted there (.pth files, scripts). A fresh /proc, a minimal /dev. One tmpfs of the disk
budget at /mnt holds the work dir /mnt/data, /mnt/tmp (= /tmp) and /mnt/home; /dev/shm is a small tmpfs
inside the same budget. Nothing else: of /etc only ld.so.cache and localtime; no /run or /var (no database
sockets), no data dir, no host /tmp. Every namespace is new (the network one has a loopback only).

The uid: a non-root server's bwrap makes a user namespace where the code is 65534, mapped to the server's
uid. As root that mapping would make 65534 the host's root, so there bwrap runs privileged without a user
namespace and the init (sandbox_init) drops to the host's nobody, 65534, keeping no capability; a bwrap
started as nobody could not reach an interpreter under /root (pyenv). Either way bwrap sets no_new_privs.
"""
from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import sysconfig
from dataclasses import dataclass

SANDBOX_UID = SANDBOX_GID = 65534
SCRATCH, WORK, TMP, HOME = "/mnt", "/mnt/data", "/mnt/tmp", "/mnt/home"
SHM = "/dev/shm"
SITE_PACKAGES = "/opt/understudy/site-packages"
_ROOT_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")  # merged-/usr symlinks, or real dirs
_ETC = ("/etc/ld.so.cache", "/etc/localtime")
_NAMESPACES = ("--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try")


@dataclass(frozen=True)
class Runtime:
    python: str  # the interpreter, at the same path inside as outside
    binds: tuple[str, ...]  # host dirs bound read-only at the same path
    links: tuple[tuple[str, str], ...]  # (target, path) symlinks at the root
    site_packages: tuple[tuple[str, str], ...]  # (host dir, path inside)


@functools.cache
def runtime() -> Runtime:
    """The interpreter and what it needs, from the running server's own."""
    python = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    binds = ["/usr"]
    for path in (os.path.realpath(sys.base_prefix), os.path.dirname(python)):
        if not any(_within(path, bound) for bound in binds):
            binds.append(path)
    links = []
    for name in _ROOT_LINKS:
        path = f"/{name}"
        if os.path.islink(path):
            links.append((os.readlink(path), path))
        elif os.path.isdir(path):
            binds.append(path)
    sites: list[str] = []
    for key in ("purelib", "platlib"):
        path = os.path.realpath(sysconfig.get_paths()[key])
        if os.path.isdir(path) and path not in sites and not any(_within(path, bound) for bound in binds):
            sites.append(path)
    inside = [SITE_PACKAGES if i == 0 else f"{SITE_PACKAGES}-{i + 1}" for i in range(len(sites))]
    return Runtime(python, tuple(binds), tuple(links), tuple(zip(sites, inside)))


@functools.cache
def features(bwrap: str) -> frozenset[str]:
    """The options this bwrap knows (--size arrived in 0.7, --disable-userns in 0.8)."""
    shown = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=10)
    return frozenset(re.findall(r"^\s+(--[a-z0-9-]+)", shown.stdout + shown.stderr, re.MULTILINE))


def privileged() -> bool:
    return os.geteuid() == 0


def command(bwrap: str, *, seccomp_fd: int, disk_bytes: int, shm_bytes: int, work_dir: str | None,
            argv: list[str]) -> list[str]:
    """The bwrap command line that runs `argv` (the init) in the private root."""
    known, rt = features(bwrap), runtime()
    args = [bwrap, "--die-with-parent", "--new-session", "--as-pid-1"]
    if privileged():
        # Only what the init needs to become 65534 and clear its bounding set; it drops them all.
        args += [*_NAMESPACES, "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
                 "--cap-add", "CAP_SETPCAP"]
    else:
        args += [*_NAMESPACES, "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID), "--cap-drop", "ALL"]
        if "--disable-userns" in known:
            args.append("--disable-userns")
    args += ["--hostname", "sandbox"]
    binds = [(path, path) for path in rt.binds] + list(rt.site_packages)
    # Mount points' parents made traversable first (privileged, bwrap would make /root 0700 as on the host).
    for parent in sorted({p for _, inside in binds + [(p, p) for p in _ETC] for p in _parents(inside)}):
        args += ["--perms", "0755", "--dir", parent]
    for host, inside in binds:
        args += ["--ro-bind", host, inside]
    for target, path in rt.links:
        args += ["--symlink", target, path]
    for path in _ETC:
        args += ["--ro-bind-try", path, path]
    args += ["--proc", "/proc", "--dev", "/dev"]
    sized = "--size" in known  # else the init polls the tmpfs usage (sandbox_init: "disk")
    args += ["--perms", "1777", *(["--size", str(shm_bytes)] if sized else []), "--tmpfs", SHM]
    args += ["--perms", "0755", *(["--size", str(disk_bytes - shm_bytes)] if sized else []), "--tmpfs", SCRATCH]
    # Root-owned where bwrap is privileged: world-writable, for the only user there is.
    args += ["--perms", "1777", "--dir", TMP, "--perms", "0777", "--dir", HOME]
    args += ["--bind", work_dir, WORK] if work_dir else ["--perms", "0777", "--dir", WORK]
    args += ["--symlink", TMP, "/tmp", "--chdir", WORK, "--remount-ro", "/dev", "--remount-ro", "/"]
    args += ["--seccomp", str(seccomp_fd), "--", *argv]
    return args


def sizes_enforced(bwrap: str) -> bool:
    return "--size" in features(bwrap)


def _parents(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")
