"""Bollinger band breakout, long only."""

from tradefleet.strategy import DecimalParam, IntParam, Strategy


class BollingerBreakout(Strategy):
    """Buy when the close breaks above the upper Bollinger band; sell when it falls back below the middle band.

    Bollinger bands (John Bollinger, *Bollinger on Bollinger Bands*, 2001): a simple moving average of
    the close over `period` candles (the middle band) plus and minus `width` population standard
    deviations of the close over the same window. A close above the upper band is read as the start
    of a move (breakout), not as overbought. A 4 % stoploss limits a failed breakout.
    """

    timeframe = "1h"
    stoploss = -0.04
    period = IntParam(20, low=5, high=200, help="band length, in candles")
    width = DecimalParam(2.0, low=0.5, high=4.0, step=0.1, help="band half-width, in standard deviations")

    @property
    def startup_candles(self) -> int:
        return self.period

    def signals(self, candles):
        close = candles["close"]
        middle = close.rolling(self.period).mean()
        upper = middle + self.width * close.rolling(self.period).std(ddof=0)
        crossed_up = (close > upper) & (close.shift(1) <= upper.shift(1))
        return candles.assign(
            enter_long=crossed_up.fillna(False),
            exit_long=(close < middle).fillna(False),
        )
