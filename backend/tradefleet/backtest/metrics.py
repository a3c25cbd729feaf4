"""Performance metrics of a backtest, from its per-candle equity curve and its trades.

Conventions (every value is a JSON number or ``None``; never NaN or infinity):

- ``total_return_pct``: ``(final_equity / stake - 1) * 100``.
- ``cagr_pct``: compound annual growth, ``((final_equity / stake) ** (1 / years) - 1) * 100`` with
  ``years`` = time from the first to the last candle's open time over a 365.25-day year; ``None``
  when the data span no time or the annual rate overflows a float; ``-100`` when the equity is gone.
- ``max_drawdown_pct``: the largest fall of the per-candle equity (valued at each close) below its
  running peak (the stake included), as a **positive** percentage of that peak (``12.5`` = 12.5 %
  below the peak); 0 when equity never fell.
- ``sharpe``: ``mean(r) / std(r, ddof=1) * sqrt(P)`` over the per-candle simple returns of equity
  ``r[i] = equity[i] / equity[i-1] - 1`` (``n - 1`` returns for ``n`` candles), risk-free rate 0, ``P`` = candles per 365-day year (crypto trades 24/7: 365 * 86400 s / timeframe).
  ``None`` when the returns have no spread (fewer than two, or constant).
- ``sortino``: ``mean(r) / DD * sqrt(P)`` with the downside deviation ``DD = sqrt(mean(min(r, 0)**2))``
  over all returns (target 0; Sortino & Price 1994, as in most crypto tools); ``None`` when no
  return is negative.
- ``win_rate_pct``: closed trades with PnL > 0 over closed trades, in %; ``None`` without trades.
- ``profit_factor``: gross profit / gross loss of closed trades (PnL after fees); ``None`` when no
  trade lost (undefined or infinite).
- ``trades``: closed trades (an open position at the end is not counted).
- ``exposure_pct``: share of candles with a position held at their close, in %.
- ``avg_trade_duration_s``: mean of exit time minus entry time (fill candles' open times) of closed
  trades, in seconds; ``None`` without trades.
- ``final_equity``: equity at the last close (an open position valued at that close, no exit fee).
- ``fees_paid``: every fee charged, quote currency (the open position's entry fee included).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

YEAR_S = 365 * 86_400
"""Seconds per year for annualising per-candle ratios (365 days: crypto markets never close)."""
CAGR_YEAR_MS = 365.25 * 86_400_000
"""Milliseconds per year for CAGR (a 365.25-day year)."""


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def compute_metrics(*, stake: float, equity: np.ndarray, time_ms: np.ndarray, timeframe_s: float,
                    closed: list[dict[str, Any]], position: np.ndarray | None = None,
                    fees_paid: float = 0.0) -> dict[str, Any]:
    """The metrics dictionary (see the module docstring for each convention).

    ``equity``: per-candle equity at each close (quote); ``time_ms``: the candles' open times;
    ``timeframe_s``: candle length in seconds; ``closed``: closed trades as dicts with ``pnl``,
    ``entry_time_ms`` and ``exit_time_ms``; ``position``: per-candle base amount held at the close.
    """
    equity = np.asarray(equity, dtype="float64")
    n = len(equity)
    final = float(equity[-1]) if n else float(stake)
    total_return = (final / stake - 1.0) * 100.0

    cagr = None
    if n >= 2 and time_ms[-1] > time_ms[0]:
        years = (float(time_ms[-1]) - float(time_ms[0])) / CAGR_YEAR_MS
        ratio = final / stake
        try:
            cagr = -100.0 if ratio <= 0 else (ratio ** (1.0 / years) - 1.0) * 100.0
        except OverflowError:  # a gain compounded over a few minutes: not a meaningful annual rate
            cagr = None

    max_dd = 0.0
    sharpe = sortino = None
    if n:
        with_start = np.concatenate(([stake], equity))
        peaks = np.maximum.accumulate(with_start)
        with np.errstate(divide="ignore", invalid="ignore"):
            drawdown = np.where(peaks > 0, (peaks - with_start) / peaks, 0.0)
        max_dd = float(drawdown.max()) * 100.0
        with np.errstate(divide="ignore", invalid="ignore"):
            returns = equity[1:] / equity[:-1] - 1.0
        returns = returns[np.isfinite(returns)]
        periods = YEAR_S / timeframe_s if timeframe_s > 0 else 0.0
        if len(returns) >= 2 and periods:
            mean = float(returns.mean())
            std = float(returns.std(ddof=1))
            if std > 0:
                sharpe = mean / std * math.sqrt(periods)
            downside = float(np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2)))
            if downside > 0:
                sortino = mean / downside * math.sqrt(periods)

    pnls = np.array([t["pnl"] for t in closed], dtype="float64")
    wins = pnls[pnls > 0]
    losses = pnls[pnls < 0]
    win_rate = float(len(wins)) / len(pnls) * 100.0 if len(pnls) else None
    profit_factor = float(wins.sum()) / float(-losses.sum()) if len(losses) else None
    durations = [(t["exit_time_ms"] - t["entry_time_ms"]) / 1000.0 for t in closed]
    exposure = float(np.count_nonzero(position > 0)) / n * 100.0 if position is not None and n else 0.0

    return {
        "total_return_pct": _finite(total_return),
        "cagr_pct": _finite(cagr),
        "max_drawdown_pct": _finite(max_dd),
        "sharpe": _finite(sharpe),
        "sortino": _finite(sortino),
        "win_rate_pct": _finite(win_rate),
        "profit_factor": _finite(profit_factor),
        "trades": len(closed),
        "exposure_pct": _finite(exposure),
        "avg_trade_duration_s": _finite(sum(durations) / len(durations)) if durations else None,
        "final_equity": _finite(final),
        "fees_paid": _finite(fees_paid),
    }
