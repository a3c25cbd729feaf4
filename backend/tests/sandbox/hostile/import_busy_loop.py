"""Hostile, at import time: busy-loops forever before the class is even defined, so its runner never
says ready."""

from tradefleet.strategy import Strategy

while True:
    pass


class ImportBusyLoop(Strategy):
    """Never defined."""

    timeframe = "1m"

    def signals(self, candles):
        return candles.assign(enter_long=False, exit_long=False)
