"""Hostile: reads the process environment (os.environ and /proc/self/environ) inside signals()."""

import os

from tradefleet.strategy import Strategy


class ReadEnviron(Strategy):
    """Reports its whole environment in the exception it raises."""

    timeframe = "1m"

    def signals(self, candles):
        with open("/proc/self/environ", "rb") as handle:
            raw = handle.read().replace(b"\0", b" ").decode(errors="replace")
        raise RuntimeError(f"environ={dict(os.environ)!r} proc={raw!r}")
