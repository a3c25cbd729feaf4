"""Hostile: sends signals to every process it can name: the test process's host pid (a parameter),
pid 1, its parent, and every process (kill -1)."""

import os
import signal

from tradefleet.strategy import IntParam, Strategy


def attempt(what, fn):
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001
        return f"{what}: refused {type(exc).__name__}"
    return f"{what}: sent"


class SignalProcesses(Strategy):
    """Reports each kill's outcome in the exception it raises (it is itself still alive to raise it)."""

    timeframe = "1m"
    host_pid = IntParam(1, low=1, high=2**22)

    def signals(self, candles):
        out = [attempt(f"host pid {self.host_pid}", lambda: os.kill(self.host_pid, signal.SIGTERM)),
               attempt("pid 1", lambda: os.kill(1, signal.SIGKILL)),
               attempt("parent", lambda: os.kill(os.getppid(), signal.SIGKILL)),
               attempt("every process", lambda: os.kill(-1, signal.SIGKILL))]
        raise RuntimeError("; ".join(out))
