"""The sandbox's seccomp filter, compiled to the BPF program that `bwrap --seccomp FD` loads.

Default allow, deny a list (the shape of Flatpak's and Docker's profiles, shorter): model-written code
needs files, processes, threads and sockets, never the kernel's administrative or rarely-audited
interfaces. The namespaces and the unprivileged uid already take most of these away; the filter also
closes those an unprivileged process keeps (ptrace, new user namespaces, io_uring, keyrings, userfaultfd)
and the ways to hold memory the supervisor cannot see (memfd and SysV segments are in nobody's RSS).
libseccomp (through the ctypes binding pyseccomp) writes the program; other architectures' syscall ABIs
(i386 on x86_64) are killed by its default bad-arch action.
"""
from __future__ import annotations

import errno
import functools

DENIED = (
    # debugging another process, reading or writing its memory
    "ptrace", "process_vm_readv", "process_vm_writev",
    # the mount table and the root
    "mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount",
    "fspick", "mount_setattr",
    # namespaces (clone's namespace flags below)
    "unshare", "setns",
    # kernel keyrings, BPF, perf, userfaultfd, io_uring: large, often-exploited surfaces
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    # the kernel itself, devices, the machine
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon",
    "swapoff", "syslog", "acct", "quotactl", "lookup_dcookie", "uselib", "iopl", "ioperm", "vhangup",
    # file handles bypass path permissions
    "open_by_handle_at", "name_to_handle_at",
    # memory no process's RSS shows, so the supervisor's total could not count it
    "memfd_create", "memfd_secret", "shmget",
)
_NAMESPACE_FLAGS = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
_TIOCSTI, _TIOCLINUX = 0x5412, 0x541C  # pushing keystrokes into a terminal
# Address families a sandbox may open: Unix, IPv4/IPv6 (loopback only: its own network namespace) and
# netlink (glibc's getaddrinfo asks it for the interfaces). Others (vsock reaches the hypervisor, not
# namespaced; AF_ALG is the kernel crypto API) fail as unsupported.
_FAMILIES = {1, 2, 10, 16}
_MAX_FAMILY = 64


@functools.cache
def bpf_program() -> bytes:
    """The compiled filter (built once per process). Raises OSError/ImportError where libseccomp is missing."""
    import os

    import pyseccomp as sc

    rules = sc.SyscallFilter(sc.ALLOW)
    deny = sc.ERRNO(errno.EPERM)
    for name in DENIED:
        try:
            rules.add_rule(deny, name)
        except OSError:  # not a syscall on this architecture (iopl on arm64)
            continue
    for bit in range(32):  # one rule per namespace flag: a rule's conditions on one argument are ANDed
        if _NAMESPACE_FLAGS & (1 << bit):
            rules.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, 1 << bit, 1 << bit))
    # clone3 passes its flags in memory a filter cannot read: ENOSYS makes glibc fall back to clone.
    rules.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    for request in (_TIOCSTI, _TIOCLINUX):
        rules.add_rule(deny, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, request))
    # another process's limits (the supervisor's): only one's own, pid 0
    rules.add_rule(deny, "prlimit64", sc.Arg(0, sc.NE, 0))
    for family in range(_MAX_FAMILY):
        if family not in _FAMILIES:
            rules.add_rule(sc.ERRNO(errno.EAFNOSUPPORT), "socket", sc.Arg(0, sc.EQ, family))
            rules.add_rule(sc.ERRNO(errno.EAFNOSUPPORT), "socketpair", sc.Arg(0, sc.EQ, family))
    with open(os.memfd_create("seccomp"), "w+b") as out:  # an in-memory file: no size to guess for a pipe
        rules.export_bpf(out)
        out.seek(0)
        return out.read()
