"""Hostile: starts a program with subprocess (a shell that would write a marker file on the host)."""

import subprocess

from tradefleet.strategy import Param, ParamError, Strategy


class Text(Param):
    def validate(self, value):
        if not isinstance(value, str) or len(value) > 4000:
            raise ParamError(self.name, "must be text")
        return value


class SubprocessRun(Strategy):
    """Raises what subprocess raised, or reports the program's output."""

    timeframe = "1m"
    marker = Text("")

    def signals(self, candles):
        done = subprocess.run(["/bin/sh", "-c", f"id; touch {self.marker}"], capture_output=True, timeout=1)
        raise RuntimeError(f"GOT a process: {done.returncode} {done.stdout!r}")
