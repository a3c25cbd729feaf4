"""What the exchange says about a live order, written as rows: each fill once, applied to the run's
mirrored wallet and round trip (:class:`~tradefleet.execution.ledger.RoundTrip`), the run events that
tell the trader, the live updates published after the commit, and pausing a run with a reason.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, select

from tradefleet.db import lock_for_write, session_scope
from tradefleet.events.outbox import Outbox
from tradefleet.events.updates import FillUpdate, LogUpdate, OrderUpdate, StatusUpdate, TradeUpdate
from tradefleet.execution.ledger import RoundTrip
from tradefleet.models import (
    ORDER_FINAL,
    EventLevel,
    ExchangeMarket,
    Fill,
    Order,
    OrderSide,
    OrderStatus,
    Run,
    RunEvent,
    RunStatus,
    Trade,
    TradeStatus,
)
from tradefleet.models._types import utcnow

log = logging.getLogger(__name__)

_CCXT_STATUS = {"open": OrderStatus.open, "closed": OrderStatus.filled, "canceled": OrderStatus.cancelled,
                "cancelled": OrderStatus.cancelled, "expired": OrderStatus.cancelled,
                "rejected": OrderStatus.rejected}


def run_event(session: Session, run_id: uuid.UUID, kind: str, message: str, *, level: EventLevel = EventLevel.info,
           data: dict | None = None, candle_ms: int | None = None) -> RunEvent:
    event = RunEvent(run_id=run_id, kind=kind, message=message, level=level, data=data or {},
                     candle_ms=candle_ms)
    session.add(event)
    return event


def order_updates(session: Session, run: Run, order: Order, *, fills: list[Fill] = (),
                  trade: Trade | None = None) -> Outbox:
    """The live updates (:mod:`tradefleet.events.updates`) of an order change about to commit: the
    order, its new fills, the round trip, the run events added in ``session`` and the run's status if it
    changed. Built after a flush (ids assigned), published by the caller after the commit."""
    box = Outbox()
    box.add(run.owner_id, OrderUpdate.of(run.id, order))
    for fill in fills:
        box.add(run.owner_id, FillUpdate.of(run.id, fill))
    if trade is not None:
        box.add(run.owner_id, TradeUpdate.of(run.id, trade))
    added = [o for o in session.identity_map.values() if isinstance(o, RunEvent) and o.run_id == run.id]
    for event in sorted(added, key=lambda e: e.id or 0):
        box.add(run.owner_id, LogUpdate.of(run.id, event))
    if run.status == RunStatus.paused:
        box.add(run.owner_id, StatusUpdate.of(run))
    return box


def pause_live_run(session: Session, run: Run, reason: str) -> None:
    """Pause ``run`` (if running) with ``reason`` as an error event; the caller commits."""
    if run.status == RunStatus.running:
        run.status = RunStatus.paused
        run.status_reason = reason
        session.add(run)
        run_event(session, run.id, "paused", reason, level=EventLevel.error)


@dataclass
class MarketInfo:
    """A live run's market as the order manager needs it. ``taker`` is None when the market has left the
    catalog (a refresh no longer lists it): fills are still recorded, but no buy can be sized."""

    base: str
    quote: str
    taker: float | None
    amount_step: float | None
    min_amount: float | None = None


def market_info(session: Session, run: Run) -> MarketInfo:
    info = session.get(ExchangeMarket, (run.exchange, run.symbol))
    if info is None:
        base, quote = run.symbol.split("/", 1)
        return MarketInfo(base, quote.split(":")[0], None, None)
    return MarketInfo(info.base, info.quote, info.taker, info.amount_step, info.min_amount)


def fee_split(trade: dict[str, Any], info: MarketInfo) -> tuple[float, float, str]:
    """(fee in base, fee in quote, fee currency) of one ccxt trade."""
    fee = trade.get("fee") or {}
    cost = float(fee.get("cost") or 0.0)
    currency = fee.get("currency") or info.quote
    if currency == info.base:
        return cost, 0.0, currency
    if currency == info.quote:
        return 0.0, cost, currency
    return 0.0, 0.0, currency  # e.g. BNB: recorded on the fill, not in the run's wallet


def apply_fill(session: Session, run: Run, order: Order, trade_row: Trade | None, fill: dict[str, Any],
                info: MarketInfo) -> Trade | None:
    """Apply one exchange trade to the run's mirrored wallet and round trip (the paper path's
    conventions: cash in quote, position in base, fees summed in quote; a round trip opens on the
    first buy from flat and closes when the position is back to zero). Returns the open trade."""
    price, amount = float(fill["price"]), float(fill["amount"])
    cost = float(fill.get("cost") or price * amount)
    fee_base, fee_quote, _ = fee_split(fill, info)
    fee_value = fee_quote + fee_base * price
    time_ms = int(fill.get("timestamp") or 0)
    if order.side == OrderSide.buy:
        got = amount - fee_base
        run.cash -= cost + fee_quote
        run.position_amount += got
        run.fees_paid += fee_value
        # The round trip's entry price is the price paid (gross), its base what the position received (net
        # of a fee taken in base), its entry fee the fees valued in quote: entry × bought + fee = cost.
        if trade_row is None:
            round_trip = RoundTrip.open(time_ms, price=price, amount=got, fee=fee_value)
            trade_row = round_trip.new_trade(run.id)
            session.add(trade_row)
        else:
            round_trip = RoundTrip.from_trade(trade_row, run.position_amount - got)
            round_trip.add_buy(price=price, amount=got, fee=fee_value)
            round_trip.store()
        run.position_entry_price = trade_row.entry_price
    else:
        held = run.position_amount
        run.cash += cost - fee_quote
        run.position_amount -= amount + fee_base
        run.fees_paid += fee_value
        step = info.amount_step or 0.0
        if run.position_amount <= max(step * 1e-6, 1e-12):
            run.position_amount = 0.0
        # Below one amount step the rest cannot be sold (what a buy's fee in base leaves): the round
        # trip is over; the dust stays in the wallet, as on the exchange.
        flat = run.position_amount < max(step, info.min_amount or 0.0) or run.position_amount == 0.0
        if trade_row is not None:
            round_trip = RoundTrip.from_trade(trade_row, held)
            round_trip.add_sell(price=price, amount=amount, fee=fee_value, remaining=run.position_amount)
            if flat:
                round_trip.close(time_ms=time_ms, reason=order.reason)
                run.realised_pnl += trade_row.pnl
                session.add(trade_row)
                run.position_entry_price = None
                trade_row = None
            else:
                round_trip.store()
    session.add(run)
    return trade_row


def record_exchange_state(order_id: uuid.UUID, remote: dict[str, Any], trades: list[dict[str, Any]]) -> Order:
    """Adopt the exchange's view of an order (ccxt unified order ``remote`` and its ``trades``) in one
    short transaction: new fills are inserted (each exchange trade once) and applied to the run's
    wallet under the run's row lock; the order's status, filled amount, average, cost and fee follow
    the recorded fills. Returns the updated order."""
    with session_scope() as session:
        lock_for_write(session)
        order = session.exec(select(Order).where(Order.id == order_id).with_for_update()).one()
        run = session.exec(select(Run).where(Run.id == order.run_id).with_for_update()).one()
        info = market_info(session, run)
        seen = set(session.exec(select(Fill.exchange_trade_id).where(Fill.order_id == order.id)).all())
        trade_row = session.exec(select(Trade).where(Trade.run_id == run.id, Trade.status == TradeStatus.open)).first()
        new_fills: list[Fill] = []
        for t in sorted(trades, key=lambda t: (t.get("timestamp") or 0, str(t.get("id")))):
            trade_id = str(t.get("id"))
            if trade_id in seen:
                continue
            seen.add(trade_id)
            fee_base, fee_quote, currency = fee_split(t, info)
            price, amount = float(t["price"]), float(t["amount"])
            new_fills.append(Fill(order_id=order.id, run_id=run.id, side=order.side, time_ms=int(t.get("timestamp") or 0),
                             price=price, amount=amount, cost=float(t.get("cost") or price * amount),
                             fee=fee_base + fee_quote, fee_currency=currency, exchange_trade_id=trade_id))
            session.add(new_fills[-1])
            trade_row = apply_fill(session, run, order, trade_row, t, info)
            verb = "bought" if order.side == OrderSide.buy else "sold"
            run_event(session, run.id, "fill", f"{verb} {amount:g} {info.base} at {price:g} {info.quote} "
                   f"(live, {order.reason}), fee {fee_base + fee_quote:.6g} {currency}",
                   data={"order_id": str(order.id), "side": order.side.value, "price": price, "amount": amount,
                         "fee": fee_base + fee_quote, "fee_currency": currency, "trade_id": trade_id,
                         "reason": order.reason})
        session.flush()
        fills = session.exec(select(Fill).where(Fill.order_id == order.id)).all()
        filled = sum(f.amount for f in fills)
        cost = sum(f.cost for f in fills)
        order.filled = filled
        order.cost = cost
        order.average = cost / filled if filled else None
        order.fee = sum(f.fee for f in fills)
        order.fee_currency = fills[0].fee_currency if fills else order.fee_currency
        if remote.get("id") is not None:
            order.exchange_order_id = str(remote["id"])
        status = _CCXT_STATUS.get(remote.get("status") or "open", OrderStatus.open)
        remote_filled = float(remote.get("filled") or 0.0)
        if status == OrderStatus.filled and filled + 1e-12 < remote_filled * (1 - 1e-9):
            status = OrderStatus.open  # the exchange's trades are not all visible yet: come back later
            order.status_reason = "waiting for the exchange's trades of this order"
        elif status in ORDER_FINAL:
            order.status_reason = order.status_reason if status != OrderStatus.filled else None
        order.status = status
        order.updated_at = utcnow()
        session.add(order)
        session.flush()
        updates = order_updates(session, run, order, fills=new_fills, trade=trade_row if new_fills else None)
        session.commit()
    updates.publish()  # after the commit: a browser never hears of a change that was rolled back
    return order


__all__ = ["MarketInfo", "apply_fill", "market_info", "order_updates", "pause_live_run", "record_exchange_state", "run_event"]
