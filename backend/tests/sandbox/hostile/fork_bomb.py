"""Hostile: a fork bomb (every process forks forever)."""

import os

from tradefleet.strategy import Strategy


class ForkBomb(Strategy):
    """Raises what fork raised; a child would fork again forever."""

    timeframe = "1m"

    def signals(self, candles):
        forked = 0
        while True:
            os.fork()
            forked += 1
            if forked > 10_000:
                raise RuntimeError(f"GOT {forked} processes")
