"""Hostile: reads another strategy's source: the repository's strategies/ folder, the file the other
runner was started on (exact host paths given as a parameter), and the sandbox's own strategy folder."""

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
    return f"{what}: GOT {value!r}"[:160]


def read(path):
    with open(path, "rb") as handle:
        return handle.read(100)


class ReadOtherStrategy(Strategy):
    """Reports each attempt in the exception it raises."""

    timeframe = "1m"
    targets = Text("")

    def signals(self, candles):
        out = [f"own folder {os.listdir('/sandbox/strategy')}"]
        out += [attempt(p, lambda p=p: read(p)) for p in self.targets.splitlines()]
        raise RuntimeError("; ".join(out))
