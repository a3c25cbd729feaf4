"""Hostile: starts a program with os.posix_spawn (it would write a marker file on the host)."""

import os

from tradefleet.strategy import Param, ParamError, Strategy


class Text(Param):
    def validate(self, value):
        if not isinstance(value, str) or len(value) > 4000:
            raise ParamError(self.name, "must be text")
        return value


class PosixSpawn(Strategy):
    """Raises what posix_spawn raised, or the child's pid and status."""

    timeframe = "1m"
    marker = Text("")

    def signals(self, candles):
        pid = os.posix_spawn(self.python, [self.python, "-c", f"open({self.marker!r}, 'w')"], {})
        raise RuntimeError(f"GOT a process {pid}: {os.waitpid(pid, 0)}")

    @property
    def python(self):
        import sys  # noqa: PLC0415

        return sys.executable
