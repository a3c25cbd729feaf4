"""Simple moving-average crossover, long only."""

from tradefleet.strategy import IntParam, ParamError, Strategy


class SmaCross(Strategy):
    """Long when the fast SMA of the close crosses above the slow SMA; flat when it crosses back below.

    The classic trend-following crossover (the example strategy of backtesting.py and most textbooks).
    Signals are taken on closed candles; orders fill at the next candle's open.
    """

    timeframe = "1h"
    fast = IntParam(10, low=2, high=200, help="fast SMA length, in candles")
    slow = IntParam(30, low=5, high=400, help="slow SMA length, in candles")

    @classmethod
    def check_params(cls, params):
        if params["fast"] >= params["slow"]:
            raise ParamError("fast", f"must be below slow ({params['slow']}), got {params['fast']}")

    @property
    def startup_candles(self) -> int:
        # The slow SMA needs `slow` closes, and a crossover compares two consecutive rows.
        return max(self.fast, self.slow)

    def signals(self, candles):
        close = candles["close"]
        fast = close.rolling(self.fast).mean()
        slow = close.rolling(self.slow).mean()
        above = fast > slow
        was_above = above.shift(1, fill_value=False)
        valid = slow.notna() & slow.shift(1).notna()
        return candles.assign(
            enter_long=above & ~was_above & valid,
            exit_long=~above & was_above & valid,
        )
