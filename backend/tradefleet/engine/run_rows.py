"""A run as a tick reads and writes it: plain rows (no ORM unit of work), the buffer of rows a tick
bulk-inserts, pausing a run with a visible reason, and the run's account rebuilt from its rows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from tradefleet.execution.account import PendingOrder, CandleAccount
from tradefleet.execution.ledger import RoundTrip
from tradefleet.execution.paper import MarketRules, Wallet
from tradefleet.models import EventLevel, ExchangeMarket, Order, OrderStatus, Run, RunStatus, Trade
from tradefleet.models._types import utcnow
from tradefleet.strategy.base import Strategy


class RunRow:
    """The columns of a ``run`` row that a tick reads and writes (a plain object: no ORM tracking).
    Duck-compatible with :class:`Run` for :func:`pause_run` and the order and event helpers."""

    __slots__ = ("id", "strategy", "params", "symbol", "status", "status_reason", "last_candle_ms", "cash",
                 "position_amount", "position_entry_price", "realised_pnl", "fees_paid", "last_price",
                 "last_tick_at", "state", "mode", "owner_id", "strategy_version_id", "ticked", "stepped")

    COLUMNS = ("id", "strategy", "params", "symbol", "status", "status_reason", "last_candle_ms", "cash",
               "position_amount", "position_entry_price", "realised_pnl", "fees_paid", "last_price",
               "last_tick_at", "state", "mode", "owner_id", "strategy_version_id")

    TICKED = ("cash", "position_amount", "position_entry_price", "realised_pnl", "fees_paid", "last_candle_ms",
              "last_price", "last_tick_at", "state", "strategy_version_id")
    """The columns a tick changes; a paused run changes ``status`` and ``status_reason``."""

    def __init__(self, row: Any) -> None:
        for name, value in zip(self.COLUMNS, row):
            setattr(self, name, value)
        self.ticked = False
        self.stepped: range = range(0)
        """Window indexes of the candles this tick evaluated (for the live updates)."""

    def ticked_values(self) -> dict[str, Any]:
        """``{"id": ..., column: value}`` of the columns a tick changes, for an executemany ``UPDATE``."""
        return {"id": self.id, **{name: getattr(self, name) for name in self.TICKED}}


@dataclass
class RowBuffer:
    """Rows collected for one bulk insert each: equity snapshots, run events, fills."""

    snapshots: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    fills: list[dict[str, Any]] = field(default_factory=list)

    def event(self, run: Run | RunRow, kind: str, message: str, *, level: EventLevel = EventLevel.info,
              candle_ms: int | None = None, data: dict[str, Any] | None = None) -> None:
        self.events.append(dict(run_id=run.id, created_at=utcnow(), candle_ms=candle_ms, level=level.value,
                                kind=kind, message=message, data=data or {}))

    def snapshot(self, run_id: uuid.UUID, candle_ms: int, *, cash: float, position_amount: float, price: float,
                 equity: float) -> None:
        """The run's equity at a candle's close (quote currency; ``price`` is the close)."""
        self.snapshots.append(dict(run_id=run_id, candle_ms=candle_ms, cash=cash, position_amount=position_amount,
                                   price=price, equity=equity, evaluated_at=utcnow()))


def pause_run(run: Run | RunRow, reason: str, rows: RowBuffer, *, candle_ms: int | None = None) -> None:
    """Pause ``run`` with a visible reason (status, ``status_reason`` and an error event)."""
    run.status = RunStatus.paused
    run.status_reason = reason
    rows.event(run, "paused", reason, level=EventLevel.error, candle_ms=candle_ms)


def market_rules(info: ExchangeMarket) -> MarketRules:
    """The catalog entry's trading rules (taker fee as a fraction, amount step, minimum amount and cost)."""
    return MarketRules(taker=info.taker, amount_step=info.amount_step, min_amount=info.min_amount,
                       min_cost=info.min_cost)


def stored_account(run: RunRow, strategy: Strategy, rules: MarketRules, pending: list[Order],
                   trade: Trade | None) -> CandleAccount:
    """The run's account as stored: wallet from the run row, the open round trip from its trade row,
    pending orders from its open orders, protective exits from the strategy."""
    wallet = Wallet(cash=run.cash, position_amount=run.position_amount, realised_pnl=run.realised_pnl,
                    fees_paid=run.fees_paid)
    position = None
    if trade is not None and run.position_amount > 0:
        position = RoundTrip.from_trade(trade, run.position_amount)
    # A sell the platform decided (exit signal) sells the whole position; a strategy's own sell
    # (on_candle) sells the amount it asked for.
    resting = [PendingOrder(side=o.side.value, reason=o.reason, signal_ms=o.signal_candle_ms,
                            quote_amount=o.quote_amount, amount=o.amount if o.reason == "sell" else None, ref=o)
               for o in pending if o.status == OrderStatus.open]
    return CandleAccount(rules, wallet=wallet, position=position, pending=resting,
                         stoploss=strategy.stoploss, take_profit=strategy.take_profit,
                         trailing_stop=strategy.trailing_stop)


__all__ = ["RowBuffer", "RunRow", "market_rules", "pause_run", "stored_account"]
