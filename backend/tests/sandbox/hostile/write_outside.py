"""Hostile: writes files outside its scratch directory: into the repository and into the host's /tmp
(the exact host paths given as a parameter)."""

import os

from tradefleet.strategy import Param, ParamError, Strategy


class Text(Param):
    def validate(self, value):
        if not isinstance(value, str) or len(value) > 4000:
            raise ParamError(self.name, "must be text")
        return value


def write(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write("escaped")
    return "written"


def attempt(what, fn):
    try:
        value = fn()
    except BaseException as exc:  # noqa: BLE001
        return f"{what}: refused {type(exc).__name__}"
    return f"{what}: {value}"


class WriteOutside(Strategy):
    """Reports each write's outcome in the exception it raises."""

    timeframe = "1m"
    targets = Text("")

    def signals(self, candles):
        raise RuntimeError("; ".join(attempt(p, lambda p=p: write(p)) for p in self.targets.splitlines()))
