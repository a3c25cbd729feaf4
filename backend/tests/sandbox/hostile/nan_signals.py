"""Hostile: returns NaN in both signal columns."""

import numpy as np

from tradefleet.strategy import Strategy


class NanSignals(Strategy):
    """Every signal is NaN."""

    timeframe = "1m"

    def signals(self, candles):
        return candles.assign(enter_long=np.nan, exit_long=np.nan)
