"""Entry point of a strategy runner process: harden the process, then load the strategy and serve.

Run as ``python -I -S -B boot.py CONFIG_JSON`` inside bubblewrap (:mod:`tradefleet.sandbox.launch`). In
order, before any strategy code runs:

1. ``sys.path`` is the standard library plus the import roots in the config (in the sandbox only
   ``/sandbox/lib``, which holds numpy, pandas, their dependencies and the author SDK);
2. the protocol pipes move off stdin/stdout, which become ``/dev/null``;
3. numpy and pandas are imported (they are the libraries strategies use);
4. resource limits: address space, CPU seconds, open files, file size, no core files;
5. a seccomp filter (libseccomp's Python binding) refuses, with EPERM, creating sockets, starting
   processes or programs (fork, vfork, clone without CLONE_THREAD, execve), ptrace and reading other
   processes' memory, namespaces, mounts, keyrings, BPF, perf, io_uring and kernel-module calls;
6. stderr becomes ``/dev/null`` too: whatever the strategy prints leaves no trace outside.

Anything that fails here exits with status 70 and a line on stderr for the parent's error message.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import sys

DENIED = (
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_open", "pidfd_getfd",
    "fork", "vfork", "execve", "execveat",
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen",
    "fsmount", "fspick", "name_to_handle_at", "open_by_handle_at",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
    "swapon", "swapoff", "acct", "quotactl", "ioperm", "iopl", "personality", "syslog",
    "settimeofday", "clock_settime", "adjtimex", "sethostname", "setdomainname",
)
CLONE_THREAD = 0x00010000


def _fail(message: str) -> None:
    os.write(2, f"sandbox boot: {message}\n".encode())
    os._exit(70)


def _limits(cfg: dict) -> None:
    mb = 1024 * 1024
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (cfg["cpu_s"], cfg["cpu_s"] + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (cfg["file_mb"] * mb, cfg["file_mb"] * mb))
    resource.setrlimit(resource.RLIMIT_NOFILE, (cfg["open_files"], cfg["open_files"]))
    resource.setrlimit(resource.RLIMIT_AS, (cfg["memory_mb"] * mb, cfg["memory_mb"] * mb))


def _seccomp() -> None:
    import seccomp  # libseccomp's binding, bound into the sandbox next to the libraries

    f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in DENIED:
        try:
            f.add_rule(seccomp.ERRNO(errno.EPERM), name)
        except (RuntimeError, ValueError, OSError):
            pass  # not a system call on this architecture
    # clone: threads (CLONE_THREAD set) only; clone3 cannot be inspected, so it is refused with ENOSYS and
    # the C library falls back to clone.
    f.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, CLONE_THREAD, 0))
    try:
        f.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    except (RuntimeError, ValueError, OSError):
        pass
    f.load()


def main() -> None:
    cfg = json.loads(sys.argv[1])
    sys.path[:] = [p for p in sys.path if "site-packages" not in p and "dist-packages" not in p]
    sys.path[:0] = cfg["paths"]
    fd_in, fd_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    try:
        import numpy  # noqa: F401
        import pandas  # noqa: F401

        from tradefleet.sandbox import runner
    except Exception as exc:  # noqa: BLE001
        _fail(f"cannot import the strategy libraries: {type(exc).__name__}: {exc}")
    try:
        _limits(cfg)
    except (ValueError, OSError) as exc:
        _fail(f"cannot set resource limits: {exc}")
    if cfg["seccomp"]:
        try:
            _seccomp()
        except Exception as exc:  # noqa: BLE001
            _fail(f"cannot load the seccomp filter: {type(exc).__name__}: {exc}")
    os.dup2(null, 2)
    runner.main(fd_in, fd_out, cfg["path"], cfg["label"], cfg["module"])


if __name__ == "__main__":
    main()
