"""Hostile: returns a DataFrame of 20 million rows (40 MB of signals) for a window of a few
dozen candles."""

import numpy as np
import pandas as pd

from tradefleet.strategy import Strategy


class HugeDataframe(Strategy):
    """Returns the giant frame."""

    timeframe = "1m"

    def signals(self, candles):
        n = 20_000_000
        return pd.DataFrame({"enter_long": np.ones(n, dtype=bool), "exit_long": np.zeros(n, dtype=bool)})
