"""Look-ahead check: do a strategy's past signals change when the future is cut off?

A backtest calls ``signals()`` once over the whole history; a live tick calls it on a window that
ends at the latest closed candle and reads the last row. A strategy whose row ``k`` depends on rows
after ``k`` (``close.shift(-1)``, a centred rolling window, normalising by the whole series' max...)
looks brilliant in a backtest and cannot be traded. The check computes the signals once over the
full history, then again on windows truncated after sampled candles ``k`` (``candles[: k + 1]``),
and compares the truncated window's last row with the full history's row ``k``, column by column.
Any difference flags the strategy.

Sampling (deterministic for a ``seed``): half of the samples among the candles where the full
history has a signal (a cheat mostly shows up where it fires), the rest uniformly among the other
evaluated candles, all at or after ``startup_candles``. A clean result is evidence, not proof: only
the sampled candles are compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tradefleet.backtest.errors import BacktestError
from tradefleet.strategy.base import SIGNAL_COLUMNS, Strategy
from tradefleet.strategy.guard import StrategyError, call_guarded, compute_signals


@dataclass
class LookaheadReport:
    """``flagged``: some sampled past signal changed when the future was cut off. ``mismatches``:
    ``(time ISO UTC, column, full-history value, truncated-window value)``; ``checked``: the candles
    compared (their open times, epoch ms)."""

    flagged: bool
    mismatches: list[tuple[str, str, Any, Any]] = field(default_factory=list)
    checked: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (``mismatches`` as objects with ``time``, ``column``, ``full``, ``truncated``)."""
        return {
            "flagged": self.flagged,
            "samples": len(self.checked),
            "mismatches": [{"time": t, "column": c, "full": _json(f), "truncated": _json(v)}
                           for t, c, f, v in self.mismatches],
        }


def _json(value: Any) -> Any:
    if _missing(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return str(value)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and math.isnan(value))


def _same(a: Any, b: Any) -> bool:
    if _missing(a) or _missing(b):
        return _missing(a) and _missing(b)
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def _truthy(values: pd.Series) -> np.ndarray:
    try:
        return values.fillna(False).astype(bool).to_numpy()
    except (TypeError, ValueError):
        return np.zeros(len(values), dtype=bool)


def check_lookahead(strategy_cls: type[Strategy], candles: pd.DataFrame, params: dict[str, Any] | None = None, *,
                    samples: int = 20, seed: int = 0, timeout_s: float = 120.0) -> LookaheadReport:
    """Compare full-history signals with truncated-window signals at ``samples`` sampled candles.

    ``candles``: the frame a backtest would use (UTC ``DatetimeIndex``, OHLCV columns); ``params``:
    raw parameters (validated here; :class:`~tradefleet.strategy.params.ParamError` if invalid).
    Returns a :class:`LookaheadReport`. Raises :class:`BacktestError` when the strategy raises, times
    out or returns the wrong shape on the full history or on a truncated window.
    """
    strategy = strategy_cls(strategy_cls.validate_params(params))
    try:
        startup = int(call_guarded(lambda: strategy.startup_candles, timeout_s=timeout_s,
                                   what=f"{strategy.name}.startup_candles"))
        full = compute_signals(strategy, candles, timeout_s=timeout_s)
    except StrategyError as exc:
        raise BacktestError(str(exc)) from exc
    n = len(candles)
    # The last candle's window is the full history: nothing to compare there.
    eligible = np.arange(max(startup, 0), n - 1)
    if not len(eligible) or samples <= 0:
        return LookaheadReport(flagged=False)
    fired = np.zeros(n, dtype=bool)
    for column in SIGNAL_COLUMNS:
        fired |= _truthy(full[column])
    rng = np.random.default_rng(seed)
    with_signal = eligible[fired[eligible]]
    without = eligible[~fired[eligible]]
    # Half each; when one pool is short, the other makes up the number.
    take_signal = min(len(with_signal), max((samples + 1) // 2, samples - len(without)))
    picked = list(rng.choice(with_signal, size=take_signal, replace=False)) if take_signal else []
    take_rest = min(len(without), samples - take_signal)
    picked += list(rng.choice(without, size=take_rest, replace=False)) if take_rest else []
    picked = sorted(int(k) for k in picked)

    mismatches: list[tuple[str, str, Any, Any]] = []
    for k in picked:
        try:
            truncated = compute_signals(strategy, candles.iloc[: k + 1], timeout_s=timeout_s)
        except StrategyError as exc:
            raise BacktestError(f"look-ahead check, window ending {candles.index[k].isoformat()}: {exc}") from exc
        for column in SIGNAL_COLUMNS:
            a, b = full[column].iat[k], truncated[column].iat[-1]
            if not _same(a, b):
                mismatches.append((candles.index[k].isoformat(), column, a, b))
    times = candles.index.as_unit("ms").asi8
    return LookaheadReport(flagged=bool(mismatches), mismatches=mismatches, checked=[int(times[k]) for k in picked])
