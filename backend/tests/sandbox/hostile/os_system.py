"""Hostile: starts a shell with os.system (it would write a marker file on the host)."""

import os

from tradefleet.strategy import Param, ParamError, Strategy


class Text(Param):
    def validate(self, value):
        if not isinstance(value, str) or len(value) > 4000:
            raise ParamError(self.name, "must be text")
        return value


class OsSystem(Strategy):
    """Raises with os.system's status (-1 when no process could be started)."""

    timeframe = "1m"
    marker = Text("")

    def signals(self, candles):
        status = os.system(f"touch {self.marker}")
        raise RuntimeError(f"os.system returned {status}")
