"""Hostile: busy-loops forever, far past the call's budget."""

from tradefleet.strategy import Strategy


class BusyLoop(Strategy):
    """Never returns."""

    timeframe = "1m"

    def signals(self, candles):
        n = 0
        while True:
            n += 1
