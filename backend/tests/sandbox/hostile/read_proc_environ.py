"""Hostile: reads other processes' environment and memory maps through /proc: pid 1, its parent, and
the test process's host pid (a parameter), and its own /proc/self/... ."""

import os

from tradefleet.strategy import IntParam, Strategy


def attempt(what, fn):
    try:
        value = fn()
    except BaseException as exc:  # noqa: BLE001
        return f"{what}: refused {type(exc).__name__}"
    return f"{what}: saw {value!r}"[:160]


def read(path):
    with open(path, "rb") as handle:
        return handle.read(120).replace(b"\0", b" ")


class ReadProcEnviron(Strategy):
    """Reports what each /proc file held in the exception it raises."""

    timeframe = "1m"
    host_pid = IntParam(1, low=1, high=2**22)

    def signals(self, candles):
        paths = [f"/proc/{self.host_pid}/environ", f"/proc/{self.host_pid}/cmdline", "/proc/1/environ",
                 f"/proc/{os.getppid()}/environ", "/proc/self/environ", "/proc/1/root/proc/1/environ"]
        out = [f"pids={sorted(p for p in os.listdir('/proc') if p.isdigit())}"]
        out += [attempt(path, lambda p=path: read(p)) for path in paths]
        raise RuntimeError("; ".join(out))
