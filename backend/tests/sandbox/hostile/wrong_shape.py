"""Hostile: returns a frame of the wrong shape: one row short, on a shifted index."""

from tradefleet.strategy import Strategy


class WrongShape(Strategy):
    """Drops the last candle's row."""

    timeframe = "1m"

    def signals(self, candles):
        return candles.iloc[:-1].assign(enter_long=True, exit_long=False)
