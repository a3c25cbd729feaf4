"""Bollinger band breakout, long only."""

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

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
        # Mean and deviation of each window computed from that window alone (numpy over a sliding
        # view), not by pandas' running sums: the value at a candle is then bit-for-bit the same
        # whether the history starts a year or `period` candles earlier, so live and backtest agree.
        n = self.period
        middle = pd.Series(np.nan, index=close.index)
        upper = middle.copy()
        if len(close) >= n:
            windows = sliding_window_view(close.to_numpy(), n)
            mean, std = windows.mean(axis=1), windows.std(axis=1)
            middle.iloc[n - 1:] = mean
            upper.iloc[n - 1:] = mean + self.width * std
        crossed_up = (close > upper) & (close.shift(1) <= upper.shift(1))
        return candles.assign(
            enter_long=crossed_up.fillna(False),
            exit_long=(close < middle).fillna(False),
        )
