"""Small candle frames for the backtest tests."""

from __future__ import annotations

import numpy as np
import pandas as pd


def frame(rows, start="2024-01-01", freq="1h") -> pd.DataFrame:
    """Candles from ``(open, high, low, close)`` rows (volume 1)."""
    a = np.asarray(rows, dtype=float)
    index = pd.date_range(start, periods=len(a), freq=freq, tz="UTC", name="time")
    return pd.DataFrame({"open": a[:, 0], "high": a[:, 1], "low": a[:, 2], "close": a[:, 3],
                         "volume": np.ones(len(a))}, index=index)
