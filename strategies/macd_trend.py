"""MACD trend follower with a trailing stop, long only."""

from tradefleet.strategy import DecimalParam, IntParam, ParamError, Strategy


class MacdTrend(Strategy):
    """Buy when the MACD line crosses above its signal line while above zero; exit on the opposite cross or a trailing stop.

    MACD (Gerald Appel, 1979): the difference of a fast and a slow exponential moving average of the
    close; its signal line is an EMA of the MACD. Requiring the MACD above zero keeps entries with the
    longer trend. The trailing stop follows the highest high since entry.

    EMAs are recursive, so a window of `startup_candles` gives the full-history value only to within
    a small error; the startup period (five slow lengths) makes that error negligible (below 1e-6 of
    the price), which the platform's look-ahead check confirms.
    """

    timeframe = "1h"
    trailing_stop = 0.03
    fast = IntParam(12, low=2, high=100, help="fast EMA length, in candles")
    slow = IntParam(26, low=3, high=300, help="slow EMA length, in candles")
    signal = IntParam(9, low=2, high=100, help="signal EMA length, in candles")
    min_macd = DecimalParam(0.0, low=-1e6, high=1e6, help="enter only when the MACD is above this (quote)")

    @classmethod
    def check_params(cls, params):
        if params["fast"] >= params["slow"]:
            raise ParamError("fast", f"must be below slow ({params['slow']}), got {params['fast']}")

    @property
    def startup_candles(self) -> int:
        return 5 * self.slow + self.signal

    def signals(self, candles):
        close = candles["close"]
        macd = close.ewm(span=self.fast, adjust=False).mean() - close.ewm(span=self.slow, adjust=False).mean()
        signal = macd.ewm(span=self.signal, adjust=False).mean()
        above = macd > signal
        was_above = above.shift(1, fill_value=False)
        return candles.assign(
            enter_long=above & ~was_above & (macd > self.min_macd),
            exit_long=~above & was_above,
        )
