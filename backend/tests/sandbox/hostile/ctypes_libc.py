"""Hostile: calls the C library directly through ctypes: system(), socket(), and ptrace through
syscall() (attach to pid 1 and to its parent)."""

import ctypes
import os

from tradefleet.strategy import Strategy

SYS_PTRACE = 101  # x86_64
PTRACE_ATTACH = 16


class CtypesLibc(Strategy):
    """Reports each call's result and errno in the exception it raises."""

    timeframe = "1m"

    def signals(self, candles):
        libc = ctypes.CDLL(None, use_errno=True)
        out = []
        for what, call in (("system", lambda: libc.system(b"id")),
                           ("socket", lambda: libc.socket(2, 1, 0)),
                           ("ptrace pid 1", lambda: libc.syscall(SYS_PTRACE, PTRACE_ATTACH, 1, 0, 0)),
                           ("ptrace parent", lambda: libc.syscall(SYS_PTRACE, PTRACE_ATTACH, os.getppid(), 0, 0))):
            ctypes.set_errno(0)
            result = call()
            out.append(f"{what} -> {result} errno {os.strerror(ctypes.get_errno())}")
        raise RuntimeError("; ".join(out))
