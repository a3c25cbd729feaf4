"""The one error type of the backtest package."""

from __future__ import annotations


class BacktestError(ValueError):
    """A backtest cannot run: bad candles, a bad date range, too few candles, or a strategy that
    raised, timed out or returned unusable signals. The message names the problem, for the trader.
    Raised before any result exists: a backtest never returns a half-computed result."""
