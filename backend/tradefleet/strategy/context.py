"""What a stateful strategy's :meth:`~tradefleet.strategy.base.Strategy.on_candle` receives."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

import pandas as pd

STATE_MAX_BYTES = 64 * 1024
"""A run's persisted ``state`` may hold at most this much JSON."""


@dataclass(frozen=True)
class Candle:
    """One closed candle: open time (epoch ms, UTC), prices in quote, volume in base."""

    time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True)
class CandleWindow:
    """Rows ``start:stop`` of ``frame``: the window a context shows, named so that a sandboxed strategy's
    runner can be sent the frame once and the row range with each candle."""

    frame: pd.DataFrame
    start: int
    stop: int

    def rows(self) -> pd.DataFrame:
        return self.frame.iloc[self.start:self.stop]


class CandleContext:
    """The run as the strategy may see and change it on one closed candle.

    Read: ``candle`` (the candle just closed), ``candles`` (the window up to and including it,
    as given to ``signals``), ``cash`` (quote), ``position`` (base), ``entry_price`` (average, quote,
    or None), ``pending`` (orders not filled yet), ``equity`` (quote, at the close).
    Change: ``state`` (a dict kept between candles and persisted with the run; JSON values only),
    :meth:`buy` and :meth:`sell` (market orders filled at the next candle's open),
    ``log`` (a logger whose lines become run events).
    """

    def __init__(self, *, account: Any, candle: Candle,
                 candles: pd.DataFrame | CandleWindow | Callable[[], pd.DataFrame],
                 state: dict[str, Any], log: logging.Logger | logging.LoggerAdapter) -> None:
        self._account = account
        self.candle = candle
        self.window = candles if isinstance(candles, CandleWindow) else None
        self._candles = candles
        self.state = state
        self.log = log

    @property
    def candles(self) -> pd.DataFrame:
        """The closed candles up to and including :attr:`candle` (built on first use)."""
        if isinstance(self._candles, CandleWindow):
            self._candles = self._candles.rows()
        elif callable(self._candles):
            self._candles = self._candles()
        return self._candles

    @property
    def cash(self) -> float:
        return self._account.wallet.cash

    @property
    def position(self) -> float:
        return self._account.wallet.position_amount

    @property
    def entry_price(self) -> float | None:
        p = self._account.position
        return p.entry_price if p is not None else None

    @property
    def pending(self) -> int:
        return len(self._account.pending)

    @property
    def equity(self) -> float:
        return self._account.equity(self.candle.close)

    MAX_ORDERS = 10
    """Orders one candle may place."""

    def _count(self) -> None:
        self._placed = getattr(self, "_placed", 0) + 1
        if self._placed > self.MAX_ORDERS:
            raise ValueError(f"more than {self.MAX_ORDERS} orders on one candle")

    def buy(self, quote_amount: float) -> None:
        """Buy for ``quote_amount`` of the quote currency (fee included) at the next open.
        Raises ``ValueError`` if it is not positive or exceeds the cash."""
        self._count()
        if not quote_amount > 0:
            raise ValueError(f"buy amount must be positive, got {quote_amount}")
        if quote_amount > self.cash * (1 + 1e-9):
            raise ValueError(f"buy of {quote_amount:g} exceeds the cash {self.cash:g}")
        self._account.buy(self.candle.time_ms, quote_amount=min(quote_amount, self.cash))

    def sell(self, amount: float | None = None) -> None:
        """Sell ``amount`` of the base currency (default: the whole position) at the next open."""
        self._count()
        if amount is not None and not amount > 0:
            raise ValueError(f"sell amount must be positive, got {amount}")
        self._account.sell(self.candle.time_ms, amount=amount)


def check_state(state: Any) -> dict[str, Any]:
    """Return ``state`` if it is a JSON-serialisable dict of at most :data:`STATE_MAX_BYTES`; else
    raise ``ValueError`` saying what is wrong."""
    if not isinstance(state, dict):
        raise ValueError(f"state must be a dict, got {type(state).__name__}")
    try:
        encoded = json.dumps(state, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"state must hold JSON values only: {exc}") from None
    if len(encoded) > STATE_MAX_BYTES:
        raise ValueError(f"state is {len(encoded)} bytes, above the limit of {STATE_MAX_BYTES}")
    return state


class RunLogger:
    """A strategy's per-run logger: each line (``info("...%s", x)``) is kept, as ``(level, message)``,
    to become a run event; at most ``limit`` lines per evaluation, then one line saying how many
    were dropped. Lines also go to the process log at DEBUG."""

    LEVELS = {"debug": "info", "info": "info", "warning": "warning", "error": "error", "critical": "error"}

    def __init__(self, name: str, *, limit: int = 20) -> None:
        self.lines: list[tuple[str, str]] = []
        self.dropped = 0
        self.limit = limit
        self._log = logging.getLogger(f"tradefleet.strategy.{name}")

    def _add(self, level: str, msg: str, *args: Any) -> None:
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = f"{msg} {args}"
        self._log.debug(text)
        if len(self.lines) < self.limit:
            self.lines.append((self.LEVELS[level], text[:1000]))
        else:
            self.dropped += 1

    def debug(self, msg: str, *args: Any, **_: Any) -> None:
        self._add("debug", msg, *args)

    def info(self, msg: str, *args: Any, **_: Any) -> None:
        self._add("info", msg, *args)

    def warning(self, msg: str, *args: Any, **_: Any) -> None:
        self._add("warning", msg, *args)

    def error(self, msg: str, *args: Any, **_: Any) -> None:
        self._add("error", msg, *args)

    exception = error
    critical = error
    warn = warning

    def take(self) -> list[tuple[str, str]]:
        """The kept lines (and a note of dropped ones), emptying the logger."""
        lines, self.lines = self.lines, []
        if self.dropped:
            lines.append(("warning", f"{self.dropped} more log line(s) dropped (limit {self.limit} per candle)"))
            self.dropped = 0
        return lines
