"""Hostile: reads the platform's database file (SQLite; the exact host path given by the test) and
PostgreSQL's data directory."""

import os

from tradefleet.strategy import Param, ParamError, Strategy


class Text(Param):
    def validate(self, value):
        if not isinstance(value, str) or len(value) > 4000:
            raise ParamError(self.name, "must be text")
        return value


def attempt(what, fn):
    try:
        value = fn()
    except BaseException as exc:  # noqa: BLE001
        return f"{what}: refused {type(exc).__name__}"
    return f"{what}: GOT {value!r}"[:200]


def read(path):
    with open(path, "rb") as handle:
        return handle.read(200)


class ReadDatabase(Strategy):
    """Tries each path of ``targets`` (newline-separated): files are read, folders listed."""

    timeframe = "1m"
    targets = Text("")

    def signals(self, candles):
        out = []
        for path in self.targets.splitlines():
            out.append(attempt(f"list {path}", lambda p=path: os.listdir(p)) if not path.endswith(
                (".key", ".txt", ".db")) else attempt(f"read {path}", lambda p=path: read(p)))
        raise RuntimeError("; ".join(out))
