"""The candle window of one market tick, as arrays, and the catch-up rule that picks a run's first candle.

A tick fetches one window per market (the last ``limit`` closed candles, oldest first) and every run of
the batch reads it. Columns are read once into numpy arrays so a run's steps index floats, not a frame.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tradefleet.market.candles import Market
from tradefleet.strategy.context import Candle


class TickWindow:
    """The closed candles of ``market`` a tick evaluates: ``frame`` (columns ``time_ms``, ``open``,
    ``high``, ``low``, ``close``, ``volume``; times in epoch milliseconds, ascending) and the same
    columns as arrays."""

    def __init__(self, market: Market, frame: pd.DataFrame) -> None:
        self.market = market
        self.frame = frame
        self.times = frame["time_ms"].to_numpy()
        self.open = frame["open"].to_numpy()
        self.high = frame["high"].to_numpy()
        self.low = frame["low"].to_numpy()
        self.close = frame["close"].to_numpy()
        self.volume = frame["volume"].to_numpy()

    def __len__(self) -> int:
        return len(self.times)

    def time_ms(self, i: int) -> int:
        return int(self.times[i])

    def candle(self, i: int) -> Candle:
        """Row ``i`` as the strategy SDK's :class:`~tradefleet.strategy.context.Candle`."""
        return Candle(int(self.times[i]), float(self.open[i]), float(self.high[i]), float(self.low[i]),
                      float(self.close[i]), float(self.volume[i]))

    def first_unseen(self, last_candle_ms: int | None, max_catchup: int) -> tuple[int | None, tuple[int, int] | None]:
        """The first row a run whose last evaluated candle opened at ``last_candle_ms`` has not
        evaluated (None: nothing new; a run never evaluated starts at the latest candle), and
        ``(behind, skipped)`` when the run is more than ``max_catchup`` candles behind, or the window
        starts after a gap, and skips ahead to the last ``max_catchup`` rows."""
        n = len(self.times)
        if last_candle_ms is None:
            return n - 1, None
        first = int(np.searchsorted(self.times, last_candle_ms, side="right"))
        if first >= n:
            return None, None  # already evaluated: a redelivered task does nothing
        behind = n - first
        gap = first == 0 and self.times[0] > last_candle_ms + self.market.timeframe_ms
        if gap:
            behind = int((self.times[-1] - last_candle_ms) // self.market.timeframe_ms)
        if behind > max_catchup or gap:
            return max(0, n - min(max_catchup, n)), (behind, behind - min(max_catchup, n))
        return first, None


__all__ = ["TickWindow"]
