"""A backtest's outcome: the raw :class:`Simulation` of either core and the :class:`BacktestResult`
with its trade list (the round-trip arithmetic of :mod:`tradefleet.execution.ledger`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tradefleet.backtest.lookahead import LookaheadReport
from tradefleet.execution.ledger import round_trip_pnl, round_trip_pnl_pct, unrealised_pnl
from tradefleet.times import iso_ms, iso_ms_array


@dataclass
class Simulation:
    """The raw outcome of :func:`simulate` on arrays.

    ``trades``: tuples ``(entry_row, entry_price, amount, entry_fee, exit_row, exit_price, exit_fee,
    exit_reason)``, closed trades in order; ``open_trade``: ``(entry_row, entry_price, amount,
    entry_fee)`` or ``None``; ``equity``, ``cash``, ``position``: per candle at its close.
    """

    trades: list[tuple[int, float, float, float, int, float, float, str]]
    open_trade: tuple[int, float, float, float] | None
    equity: np.ndarray
    cash: np.ndarray
    position: np.ndarray
    fees_paid: float


@dataclass
class BacktestResult:
    """One backtest's outcome.

    ``metrics``: see :mod:`tradefleet.backtest.metrics`; ``trades``: dicts with ``entry_time`` /
    ``exit_time`` (ISO 8601 UTC) and ``*_time_ms`` (epoch ms, the fill candles' open times),
    ``entry_price``, ``exit_price`` (quote), ``amount`` (base), ``entry_fee``, ``exit_fee``, ``fees``,
    ``pnl`` (quote), ``pnl_pct``, ``exit_reason`` (``exit_long``, ``stoploss``, ``trailing_stop``,
    ``take_profit``; ``None`` while open), ``is_open`` (an open trade has no exit; its ``pnl`` is
    unrealised at the last close, entry fee deducted); ``equity_time_ms`` / ``equity``: per-candle
    equity at each close; ``signals``: how many candles of the tested range carried each signal;
    ``lookahead``: the look-ahead check when it ran.
    """

    strategy: str
    params: dict[str, Any]
    timeframe: str
    start_ms: int
    end_ms: int
    stake: float
    fee: float
    metrics: dict[str, Any]
    trades: list[dict[str, Any]]
    equity_time_ms: np.ndarray
    equity: np.ndarray
    signals: dict[str, int]
    lookahead: LookaheadReport | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, *, equity: bool = False) -> dict[str, Any]:
        """A JSON-safe dict: ``metrics``, ``trades``, ``lookahead`` (``None`` when not checked) and
        the run's settings; with ``equity``, also ``equity`` as ``[[time_ms, equity], ...]``."""
        out: dict[str, Any] = {
            "strategy": self.strategy,
            "params": self.params,
            "timeframe": self.timeframe,
            "start": iso_ms(self.start_ms),
            "end": iso_ms(self.end_ms),
            "stake": self.stake,
            "fee": self.fee,
            **self.settings,
            "signals": self.signals,
            "metrics": self.metrics,
            "trades": self.trades,
            "lookahead": self.lookahead.to_dict() if self.lookahead is not None else None,
        }
        if equity:
            out["equity"] = [[int(t), float(v)] for t, v in zip(self.equity_time_ms, self.equity)]
        return out



def trade_dicts(time_ms: np.ndarray, trades: list[tuple[int, float, float, float, int, float, float, str]]
                 ) -> list[dict[str, Any]]:
    """Closed trades as dicts (column-wise numpy: the same IEEE operations as per trade)."""
    if not trades:
        return []
    e, entry, amount, entry_fee, i, exit_price, exit_fee, reason = (np.array(col) for col in zip(*trades))
    entry_ms, exit_ms = time_ms[e.astype("int64")], time_ms[i.astype("int64")]
    pnl = round_trip_pnl(amount, entry, exit_price, entry_fee, exit_fee)
    pnl_pct = round_trip_pnl_pct(pnl, amount, entry, entry_fee)
    fees = entry_fee + exit_fee
    keys = ("entry_time", "entry_time_ms", "exit_time", "exit_time_ms", "entry_price", "exit_price", "amount",
            "entry_fee", "exit_fee", "fees", "pnl", "pnl_pct", "exit_reason", "is_open")
    columns = (iso_ms_array(entry_ms), entry_ms.tolist(), iso_ms_array(exit_ms), exit_ms.tolist(), entry.tolist(),
               exit_price.tolist(), amount.tolist(), entry_fee.tolist(), exit_fee.tolist(), fees.tolist(),
               pnl.tolist(), pnl_pct.tolist(), reason.tolist(), [False] * len(trades))
    return [dict(zip(keys, row)) for row in zip(*columns)]


def open_trade_dict(time_ms: np.ndarray, open_trade: tuple[int, float, float, float], last_close: float
                    ) -> dict[str, Any]:
    """The open trade ``(entry_row, entry_price, amount, entry_fee)`` as a trade dict: no exit, its
    ``pnl`` unrealised at ``last_close`` (quote) with the entry fee deducted, ``is_open`` true."""
    e, price, amount, entry_fee = open_trade
    pnl = unrealised_pnl(amount, last_close, bought=amount, entry_price=price, entry_fee=entry_fee)
    return {
        "entry_time": iso_ms(int(time_ms[e])), "entry_time_ms": int(time_ms[e]), "exit_time": None,
        "exit_time_ms": None, "entry_price": price, "exit_price": None, "amount": amount,
        "entry_fee": entry_fee, "exit_fee": None, "fees": entry_fee, "pnl": pnl,
        "pnl_pct": round_trip_pnl_pct(pnl, amount, price, entry_fee), "exit_reason": None, "is_open": True,
    }
