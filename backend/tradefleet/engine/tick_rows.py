"""Turning a tick's decisions into rows: the orders a run decided, the fills and rejections the
paper account simulated, the round trips it opened and closed, with the run events that tell the
trader. Orders and trades are ORM objects (written on a small fraction of ticks); fills, events and
snapshots go to the :class:`~tradefleet.engine.run_rows.RowBuffer` for bulk inserts.

Every row created or changed is remembered per run (``touched_orders``, ``touched_trades``) for the
live updates published after the commit.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from sqlmodel import Session

from tradefleet.engine.run_rows import RowBuffer, RunRow
from tradefleet.execution.account import PendingOrder, StepEvents
from tradefleet.execution.order_ids import client_order_id
from tradefleet.execution.paper import PaperBroker, PaperFill
from tradefleet.models import EventLevel, ExchangeMarket, Order, OrderSide, OrderStatus, OrderType, Trade
from tradefleet.models._types import utcnow


@dataclass
class TickReport:
    """What one ``evaluate_market`` call did (returned by the Celery task, logged, benchmarked)."""

    market: str
    candle_ms: int
    runs: int = 0
    ticks: int = 0
    paused: int = 0
    orders: int = 0
    fills: int = 0
    seconds: float = 0.0
    busy: int = 0
    """Runs skipped because another transaction held their row (see ``busy_run_ids``)."""
    busy_run_ids: list[uuid.UUID] = field(default_factory=list, repr=False)
    live_order_ids: list[uuid.UUID] = field(default_factory=list, repr=False)
    """Live order intents this tick committed, for the caller to send after the commit, each on its own
    (the worker enqueues one ``live.process_order`` task per order)."""
    live_pending_order_ids: list[uuid.UUID] = field(default_factory=list, repr=False)
    """Orders of live runs still pending at this tick (their runs took no decision): the caller has each
    resolved with the exchange (``live.process_order``), off the tick."""


class TickRows:
    """The rows one tick writes for its runs on one market (``info``: the market's catalog entry)."""

    def __init__(self, session: Session, info: ExchangeMarket, broker: PaperBroker, buffer: RowBuffer,
                 report: TickReport) -> None:
        self.session = session
        self.info = info
        self.broker = broker
        self.buffer = buffer
        self.report = report
        self.touched_orders: dict[uuid.UUID, dict[uuid.UUID, Order]] = defaultdict(dict)
        self.touched_trades: dict[uuid.UUID, list[Trade]] = defaultdict(list)

    def new_order(self, run: RunRow, side: OrderSide, signal_ms: int, amount: float, reason: str,
                  *, quote_amount: float | None = None, seq: int = 0,
                  status: OrderStatus = OrderStatus.open) -> Order:
        """A market order decided on the candle opening at ``signal_ms`` (``amount``: base currency, an
        estimate for a buy sized in quote; ``seq`` numbers several orders of one candle)."""
        order = Order(run_id=run.id, client_order_id=client_order_id(run.id, signal_ms, reason, seq),
                      symbol=run.symbol, side=side, type=OrderType.market, amount=amount,
                      quote_amount=quote_amount, status=status, reason=reason, signal_candle_ms=signal_ms)
        self.session.add(order)
        self.touched_orders[run.id][order.id] = order
        self.report.orders += 1
        return order

    def estimate(self, decided: PendingOrder, price: float, position_amount: float) -> float:
        """The base amount an order decided on a candle will trade: its own ``amount``, a buy's quote budget at ``price``,
        or the whole position (``position_amount``) for a platform-decided sell."""
        if decided.amount is not None:
            return decided.amount
        if decided.side == "buy":
            return self.broker.buy_amount(decided.quote_amount or 0.0, price)
        return position_amount

    def apply_paper(self, run: RunRow, time_ms: int, close: float, events: StepEvents,
                    position_amount: float) -> None:
        """Write one candle's paper events as rows: new orders, rejections, opened round trips, fills,
        closed round trips. ``position_amount``: the position at this candle's close (what a
        whole-position sell decided on it will sell)."""
        sequence: dict[int, int] = {}
        for decided in events.placed:
            seq = sequence[decided.signal_ms] = sequence.get(decided.signal_ms, -1) + 1
            decided.ref = self.new_order(run, OrderSide(decided.side), decided.signal_ms,
                                         self.estimate(decided, close, position_amount), decided.reason,
                                         quote_amount=decided.quote_amount, seq=seq)
        for decided, reason in events.rejected:
            order = decided.ref
            order.status, order.status_reason, order.updated_at = OrderStatus.rejected, reason, utcnow()
            self.touched_orders[run.id][order.id] = order
            self.buffer.event(run, "order_rejected", f"{order.side.value} order rejected: {reason}",
                              level=EventLevel.warning, candle_ms=time_ms)
        for position in events.opened:
            self.session.add(position.new_trade(run.id))
            self.touched_trades[run.id].append(position.ref)
        for fill_event in events.fills:
            self.record_fill(run, fill_event.order.ref, fill_event.fill, fill_event.time_ms)
        for closed in events.closed:
            trade = closed.round_trip.close(time_ms=closed.exit_time_ms, reason=closed.reason)
            self.touched_trades[run.id].append(trade)

    def live_intents(self, run: RunRow, time_ms: int, close: float, orders: list[PendingOrder]) -> None:
        """Write a live run's decisions as order intents (status ``intent``), for ``live.process_order``
        to send after the commit (their ids go to ``report.live_order_ids``)."""
        sequence: dict[int, int] = {}
        for decided in orders:
            seq = sequence[decided.signal_ms] = sequence.get(decided.signal_ms, -1) + 1
            estimate = self.estimate(decided, close, run.position_amount)
            order = self.new_order(run, OrderSide(decided.side), decided.signal_ms, estimate, decided.reason,
                                   quote_amount=decided.quote_amount, seq=seq, status=OrderStatus.intent)
            self.report.live_order_ids.append(order.id)
            self.buffer.event(run, "order_intent",
                              f"{decided.side} intent ({decided.reason}) written as {order.client_order_id}",
                              candle_ms=time_ms,
                              data={"order_id": str(order.id), "client_order_id": order.client_order_id,
                                    "side": decided.side, "quote_amount": decided.quote_amount, "amount": estimate})

    def record_fill(self, run: RunRow, order: Order, fill: PaperFill, candle_ms: int) -> None:
        """A simulated fill of ``order`` at the open of the candle opening at ``candle_ms``."""
        quote = self.info.quote
        order.status = OrderStatus.filled
        order.amount = fill.amount
        order.filled, order.average, order.cost, order.fee = fill.amount, fill.price, fill.cost, fill.fee
        order.fee_currency = quote
        order.updated_at = utcnow()
        self.touched_orders[run.id][order.id] = order
        self.buffer.fills.append(dict(order_id=order.id, run_id=run.id, side=order.side.value, time_ms=candle_ms,
                                      price=fill.price, amount=fill.amount, cost=fill.cost, fee=fill.fee,
                                      fee_currency=quote, created_at=utcnow()))
        self.report.fills += 1
        verb = "bought" if fill.side == "buy" else "sold"
        why = "" if order.reason in ("enter_long", "exit_long", "buy", "sell") else f" ({order.reason})"
        self.buffer.event(run, "fill", f"{verb} {fill.amount:g} {self.info.base} at {fill.price:g} "
                          f"{quote}{why}, fee {fill.fee:.6g} {quote}", candle_ms=candle_ms,
                          data={"order_id": str(order.id), "side": fill.side, "price": fill.price,
                                "amount": fill.amount, "fee": fill.fee, "reason": order.reason})


__all__ = ["TickReport", "TickRows"]
