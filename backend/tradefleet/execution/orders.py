"""The live order manager: order intents, sending through :class:`~tradefleet.execution.live.CcxtBroker`,
idempotent recording of fills, reconciliation with the exchange.

The order path never loses or doubles an order, whatever crashes where:

1. **Intent.** The order row is written with its deterministic ``client_order_id``
   (:func:`tradefleet.execution.order_ids.client_order_id`) and status ``intent``, and committed, before
   any network call (the live tick writes it in its own transaction).
2. **Risk guard** (:func:`tradefleet.execution.risk.check_order`): the decision is recorded as a run
   event; a refused order becomes ``rejected`` and is never sent.
3. **Submitted.** The row becomes ``submitted`` (committed) immediately before the send: from then on
   the order may exist on the exchange, so it is never sent again without a look-up.
4. **Send** (``create_order`` with ``newClientOrderId``). The exchange's answer is adopted (``open``,
   ``filled``...). A network error or timeout leaves the outcome unknown: the row becomes ``unknown``,
   and the order is looked up by its client order id (``fetch_order`` with ``origClientOrderId``)
   before anything else: found, its state is adopted; ``OrderNotFound``, it is safe to send again.
   Retries are bounded (``LIVE_SEND_ATTEMPTS``, exponential backoff); an order still unresolved stays
   ``unknown`` for reconciliation, and its run waits (no new decision while an order is pending).
5. **Fills** come from the exchange's trades of the order (``fetch_my_trades`` with ``orderId``),
   each recorded once (``(order_id, exchange_trade_id)`` is unique) and applied to the run's mirrored
   wallet and round trip in the same short transaction. An order is ``filled`` only when its recorded
   fills add up to what the exchange says it filled.

Mutual exclusion: one process works on an order at a time (:func:`order_lease`: a PostgreSQL
session advisory lock, released by the server when the holder's connection dies, e.g. on SIGKILL;
a process-local lock on SQLite, whose embedded mode runs one worker process). No database
transaction is open across a network call, and the run row is locked only to record fills.

Reconciliation (:func:`reconcile`) runs every non-final live order through the same path: when a
worker starts, periodically from beat, and before every live tick of its run. An order whose run is
no longer running is cancelled (on the exchange if it may be there), except a kill's closing sell.

Errors: ``InsufficientFunds``, ``InvalidOrder``, ``AuthenticationError``, ``PermissionDenied`` (and
the other :data:`~tradefleet.execution.live.PAUSING` errors) reject the order and pause its run with
the reason; the run's other orders and every other run carry on.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import ccxt
from sqlalchemy import text
from sqlmodel import Session, select

from tradefleet.config import get_settings
from tradefleet.db import get_engine, lock_for_write, session_scope
from tradefleet.events import Outbox, jsonable
from tradefleet.execution.ledger import RoundTrip
from tradefleet.execution.live import PAUSING, TRANSIENT, CcxtBroker, retrying
from tradefleet.execution.order_ids import client_order_id
from tradefleet.execution.paper import floor_to_step
from tradefleet.execution.risk import check_order
from tradefleet.market.candles import timeframe_ms
from tradefleet.models import (
    LIVE_PENDING,
    EventLevel,
    ExchangeMarket,
    Fill,
    FillPublic,
    Order,
    OrderPublic,
    OrderSide,
    OrderStatus,
    OrderType,
    Run,
    RunEvent,
    RunEventPublic,
    RunMode,
    RunStatus,
    Trade,
    TradePublic,
    TradeStatus,
)
from tradefleet.models._types import utcnow

log = logging.getLogger(__name__)

FINAL = (OrderStatus.filled, OrderStatus.cancelled, OrderStatus.rejected)

_CCXT_STATUS = {"open": OrderStatus.open, "closed": OrderStatus.filled, "canceled": OrderStatus.cancelled,
                "cancelled": OrderStatus.cancelled, "expired": OrderStatus.cancelled,
                "rejected": OrderStatus.rejected}


class BrokerUnavailable(Exception):
    """The run's exchange account cannot be used (deleted, or its keys cannot be decrypted)."""


# ---------------------------------------------------------------------------------------------- brokers

def broker_for_run(session: Session, run: Run) -> CcxtBroker:
    """The broker of the run's exchange account, its keys decrypted now (a worker, at the moment of
    use; :func:`tradefleet.execution.keys.live_broker_for_account`). Raises :class:`BrokerUnavailable`."""
    from tradefleet.execution.keys import live_broker_for_account

    if run.exchange_account_id is None:
        raise BrokerUnavailable("the run's exchange account was deleted")
    return live_broker_for_account(session=session, account_id=run.exchange_account_id)


# ---------------------------------------------------------------------------------------------- leases

_local_leases: set[str] = set()
_local_guard = threading.Lock()


def _lease_key(client_order_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(client_order_id.encode(), digest_size=8).digest(), "big", signed=True)


@contextmanager
def order_lease(client_order_id: str) -> Iterator[bool]:
    """Yields True when this process may work on the order now, False when another holds it.

    PostgreSQL: ``pg_try_advisory_lock`` on a dedicated connection, held (outside any transaction)
    for the duration and released by the server if this process dies. SQLite: a process-local set."""
    engine = get_engine()
    if engine.dialect.name != "postgresql":
        with _local_guard:
            if client_order_id in _local_leases:
                got = False
            else:
                _local_leases.add(client_order_id)
                got = True
        try:
            yield got
        finally:
            if got:
                with _local_guard:
                    _local_leases.discard(client_order_id)
        return
    key = _lease_key(client_order_id)
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        got = bool(connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        try:
            yield got
        finally:
            if got:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})


# ---------------------------------------------------------------------------------------------- events

def _event(session: Session, run_id: uuid.UUID, kind: str, message: str, *, level: EventLevel = EventLevel.info,
           data: dict | None = None, candle_ms: int | None = None) -> RunEvent:
    event = RunEvent(run_id=run_id, kind=kind, message=message, level=level, data=data or {},
                     candle_ms=candle_ms)
    session.add(event)
    return event


def _live_updates(session: Session, run: Run, order: Order, *, fills: list[Fill] = (),
                  trade: Trade | None = None) -> Outbox:
    """The live updates (``tradefleet.events``) of an order change about to commit: the order, its new
    fills, the round trip, the run events added in ``session`` and the run's status if it changed.
    Built after a flush (ids assigned), published by the caller after the commit."""
    box = Outbox()
    rid = str(run.id)
    box.add(run.owner_id, "order", {"run_id": rid, "order": jsonable(OrderPublic.model_validate(order).model_dump())})
    for fill in fills:
        box.add(run.owner_id, "fill", {"run_id": rid, "fill": jsonable(FillPublic.model_validate(fill).model_dump())})
    if trade is not None:
        box.add(run.owner_id, "trade", {"run_id": rid, "trade": jsonable(TradePublic.model_validate(trade).model_dump())})
    added = [o for o in session.identity_map.values() if isinstance(o, RunEvent) and o.run_id == run.id]
    for event in sorted(added, key=lambda e: e.id or 0):
        box.add(run.owner_id, "log", {"run_id": rid, "event": jsonable(RunEventPublic.model_validate(event).model_dump())})
    if run.status == RunStatus.paused:
        box.add(run.owner_id, "status", {"run_id": rid, "status": run.status.value, "status_reason": run.status_reason})
    return box


def pause_live_run(session: Session, run: Run, reason: str) -> None:
    """Pause ``run`` (if running) with ``reason`` as an error event; the caller commits."""
    if run.status == RunStatus.running:
        run.status = RunStatus.paused
        run.status_reason = reason
        session.add(run)
        _event(session, run.id, "paused", reason, level=EventLevel.error)


# ---------------------------------------------------------------------------------------------- fills

@dataclass
class _MarketInfo:
    """A live run's market as the order manager needs it. ``taker`` is None when the market has left the
    catalog (a refresh no longer lists it): fills are still recorded, but no buy can be sized."""

    base: str
    quote: str
    taker: float | None
    amount_step: float | None
    min_amount: float | None = None


def _market_info(session: Session, run: Run) -> _MarketInfo:
    info = session.get(ExchangeMarket, (run.exchange, run.symbol))
    if info is None:
        base, quote = run.symbol.split("/", 1)
        return _MarketInfo(base, quote.split(":")[0], None, None)
    return _MarketInfo(info.base, info.quote, info.taker, info.amount_step, info.min_amount)


def _fee_quote(trade: dict[str, Any], info: _MarketInfo) -> tuple[float, float, str]:
    """(fee in base, fee in quote, fee currency) of one ccxt trade."""
    fee = trade.get("fee") or {}
    cost = float(fee.get("cost") or 0.0)
    currency = fee.get("currency") or info.quote
    if currency == info.base:
        return cost, 0.0, currency
    if currency == info.quote:
        return 0.0, cost, currency
    return 0.0, 0.0, currency  # e.g. BNB: recorded on the fill, not in the run's wallet


def _apply_fill(session: Session, run: Run, order: Order, trade_row: Trade | None, fill: dict[str, Any],
                info: _MarketInfo) -> Trade | None:
    """Apply one exchange trade to the run's mirrored wallet and round trip (the paper path's
    conventions: cash in quote, position in base, fees summed in quote; a round trip opens on the
    first buy from flat and closes when the position is back to zero). Returns the open trade."""
    price, amount = float(fill["price"]), float(fill["amount"])
    cost = float(fill.get("cost") or price * amount)
    fee_base, fee_quote, _ = _fee_quote(fill, info)
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
        info = _market_info(session, run)
        seen = set(session.exec(select(Fill.exchange_trade_id).where(Fill.order_id == order.id)).all())
        trade_row = session.exec(select(Trade).where(Trade.run_id == run.id, Trade.status == TradeStatus.open)).first()
        new_fills: list[Fill] = []
        for t in sorted(trades, key=lambda t: (t.get("timestamp") or 0, str(t.get("id")))):
            trade_id = str(t.get("id"))
            if trade_id in seen:
                continue
            seen.add(trade_id)
            fee_base, fee_quote, currency = _fee_quote(t, info)
            price, amount = float(t["price"]), float(t["amount"])
            new_fills.append(Fill(order_id=order.id, run_id=run.id, side=order.side, time_ms=int(t.get("timestamp") or 0),
                             price=price, amount=amount, cost=float(t.get("cost") or price * amount),
                             fee=fee_base + fee_quote, fee_currency=currency, exchange_trade_id=trade_id))
            session.add(new_fills[-1])
            trade_row = _apply_fill(session, run, order, trade_row, t, info)
            verb = "bought" if order.side == OrderSide.buy else "sold"
            _event(session, run.id, "fill", f"{verb} {amount:g} {info.base} at {price:g} {info.quote} "
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
        elif status in FINAL:
            order.status_reason = order.status_reason if status != OrderStatus.filled else None
        order.status = status
        order.updated_at = utcnow()
        session.add(order)
        session.flush()
        updates = _live_updates(session, run, order, fills=new_fills, trade=trade_row if new_fills else None)
        session.commit()
    updates.publish()  # after the commit: a browser never hears of a change that was rolled back
    return order


# ---------------------------------------------------------------------------------------------- one order

@dataclass
class Outcome:
    """What :func:`process_order` did: the order's status after it, and whether this call sent it."""

    status: OrderStatus | None
    sent: bool = False
    busy: bool = False


def _load(order_id: uuid.UUID) -> tuple[Order, Run]:
    with session_scope() as session:
        order = session.get(Order, order_id)
        if order is None:
            raise LookupError(f"order {order_id} does not exist")
        run = session.get(Run, order.run_id)
        return order, run


def _set_status(order_id: uuid.UUID, status: OrderStatus, reason: str | None = None, *,
                bump_attempts: bool = False, amount: float | None = None,
                events: list[tuple[str, str, EventLevel, dict]] | None = None, pause: str | None = None,
                only_from: tuple[OrderStatus, ...] | None = None) -> None:
    with session_scope() as session:
        lock_for_write(session)
        order = session.exec(select(Order).where(Order.id == order_id).with_for_update()).one()
        if only_from is not None and order.status not in only_from:
            session.rollback()
            return
        order.status = status
        if reason is not None:
            order.status_reason = reason
        if bump_attempts:
            order.attempts += 1
        if amount is not None:
            order.amount = amount
        order.updated_at = utcnow()
        session.add(order)
        for kind, message, level, data in events or []:
            _event(session, order.run_id, kind, message, level=level, data=data)
        run = session.exec(select(Run).where(Run.id == order.run_id).with_for_update()).one()
        if pause is not None:
            pause_live_run(session, run, pause)
        session.flush()
        updates = _live_updates(session, run, order)
        session.commit()
    updates.publish()


def _order_data(order: Order) -> dict[str, Any]:
    return {"order_id": str(order.id), "client_order_id": order.client_order_id, "side": order.side.value,
            "reason": order.reason}


def _adopt(broker: CcxtBroker, order: Order, remote: dict[str, Any]) -> Order:
    trades: list[dict[str, Any]] = []
    if float(remote.get("filled") or 0.0) > 0 and remote.get("id") is not None:
        trades = retrying(lambda: broker.order_trades(order.symbol, str(remote["id"])),
                          what=f"trades of {order.client_order_id}")
    return record_exchange_state(order.id, remote, trades)


def _lookup(broker: CcxtBroker, order: Order) -> dict[str, Any] | None:
    return retrying(lambda: broker.fetch_order_by_client_id(order.symbol, order.client_order_id),
                    what=f"look-up of {order.client_order_id}")


def _stale(order: Order, run: Run) -> bool:
    """An intent that waited longer than two candles of its run (plus a minute) is not sent: the
    decision it carries is out of date."""
    limit = timedelta(milliseconds=2 * timeframe_ms(run.timeframe)) + timedelta(minutes=1)
    return order.reason != "kill" and utcnow() - order.created_at > limit


def _wants_cancel(order: Order, run: Run) -> bool:
    return order.reason != "kill" and (run.status != RunStatus.running or run.killed_at is not None)


def _raw_amount(session: Session, order: Order, run: Run) -> float:
    """The base amount to send (before the exchange's precision): a buy spends its quote budget (fee
    included, at the run's last price), a sell sells what was asked, at most the position."""
    info = _market_info(session, run)
    if order.side == OrderSide.buy:
        price = run.last_price or 0.0
        if price <= 0:
            raise ccxt.InvalidOrder("no price known yet to size the buy")
        if info.taker is None:
            raise ccxt.InvalidOrder(f"{run.exchange} {run.symbol} is not in the market catalog: its fee and "
                                    "precision are unknown, so the buy cannot be sized")
        raw = floor_to_step((order.quote_amount or 0.0) / (price * (1.0 + info.taker)), info.amount_step)
    else:
        raw = min(order.amount, run.position_amount)
    if raw <= 0:
        raise ccxt.InvalidOrder("amount rounds to zero at the market's precision")
    return raw


def process_order(order_id: uuid.UUID, *, broker: CcxtBroker | None = None, fresh: bool = False) -> Outcome:
    """Drive one live order as far as it can go now (module docstring): send an intent, resolve a
    submitted or unknown one by its client order id, refresh an open one, cancel one whose run is
    not running. Safe to call any number of times, from any process, concurrently.

    ``fresh``: the caller has just committed this intent (the live tick), so the look-up by client
    order id that precedes any other send is skipped; recovery paths always look up first."""
    order, run = _load(order_id)
    if order.status in FINAL:
        return Outcome(order.status)
    with order_lease(order.client_order_id) as got:
        if not got:
            return Outcome(None, busy=True)
        order, run = _load(order_id)  # re-read under the lease
        if order.status in FINAL:
            return Outcome(order.status)
        if broker is None:
            try:
                with session_scope() as session:
                    broker = broker_for_run(session, run)
            except BrokerUnavailable as exc:
                # An intent was never sent: reject it. Anything else may be on the exchange: keep it
                # for reconciliation once the account is usable again. Either way the run pauses.
                status = OrderStatus.rejected if order.status == OrderStatus.intent else order.status
                _set_status(order.id, status, str(exc), pause=f"live order {order.client_order_id}: {exc}")
                return Outcome(status)
        try:
            return _drive(broker, order, run, fresh=fresh)
        except _SendRefused as refused:
            return _refuse(order, refused.cause, placed=False)
        except TRANSIENT as exc:
            if _refused_key(exc):
                return _refuse(order, ccxt.AuthenticationError(str(exc)), placed=None)
            # The exchange is slow or down: nothing is lost, the order keeps a state that reconciliation
            # resolves by its client order id.
            log.warning("order %s: %s: %s; left for reconciliation", order.client_order_id, type(exc).__name__, exc)
            current, _ = _load(order.id)
            return Outcome(current.status)
        except PAUSING as exc:
            return _refuse(order, exc, placed=None)


def _refused_key(exc: Exception) -> bool:
    """ccxt raises Binance's -2015 ("Invalid API-key, IP, or permissions") as ``DDoSProtection`` once
    an earlier private call of the same ccxt object succeeded: a revoked key, not a rate limit."""
    return isinstance(exc, ccxt.DDoSProtection) and '"code":-2015' in str(exc).replace(" ", "")


def _refuse(order: Order, exc: Exception, *, placed: bool | None) -> Outcome:
    """The exchange refused for good: the order is ``rejected`` when it is known not to be on the
    exchange (refused on sending, ``placed=False``, or never sent), else it keeps its state for
    reconciliation; either way its run is paused with the reason."""
    current, _ = _load(order.id)
    reason = f"{type(exc).__name__}: {exc}"
    status = OrderStatus.rejected if placed is False or current.status == OrderStatus.intent else current.status
    _set_status(order.id, status, reason,
                pause=f"exchange refused live order {order.client_order_id} ({order.side.value}): {reason}",
                events=[("order_rejected" if status == OrderStatus.rejected else "order_error",
                         f"{order.side.value} order refused by the exchange: {reason}",
                         EventLevel.error, _order_data(order))])
    return Outcome(status)


class _SendRefused(Exception):
    """``create_order`` itself was refused (the order is not on the exchange)."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _drive(broker: CcxtBroker, order: Order, run: Run, *, fresh: bool) -> Outcome:
    settings = get_settings()
    cancel = _wants_cancel(order, run)
    if order.status == OrderStatus.open:
        remote = retrying(lambda: broker.fetch_order_by_client_id(order.symbol, order.client_order_id),
                          what=f"refresh of {order.client_order_id}")
        if remote is None:
            _set_status(order.id, OrderStatus.unknown, "the exchange no longer knows this order")
            return Outcome(OrderStatus.unknown)
        if cancel and remote.get("status") == "open":
            remote = _cancel(broker, order) or remote
        return Outcome(_adopt(broker, order, remote).status)

    if not (fresh and order.status == OrderStatus.intent and order.attempts == 0):
        remote = _lookup(broker, order)
        if remote is not None:
            if cancel and remote.get("status") == "open":
                remote = _cancel(broker, order) or remote
            return Outcome(_adopt(broker, order, remote).status)
        if order.exchange_order_id:
            # It was placed (the exchange gave it an id), yet a look-up by its client id finds nothing:
            # never send it again. Leave it unknown for a person to check, and pause the run.
            _set_status(order.id, OrderStatus.unknown, "placed, but the exchange no longer finds it",
                        pause=f"live order {order.client_order_id} (exchange id {order.exchange_order_id}) "
                              "is no longer found on the exchange; check the account before restarting")
            return Outcome(OrderStatus.unknown)
        # OrderNotFound: it never reached the exchange; safe to send (or to drop).

    if cancel:
        _set_status(order.id, OrderStatus.cancelled, f"not sent: run is {run.status.value}"
                    + (" (killed)" if run.killed_at else ""))
        return Outcome(OrderStatus.cancelled)
    if _stale(order, run):
        _set_status(order.id, OrderStatus.cancelled, "not sent: the decision is more than two candles old",
                    events=[("order_cancelled", f"{order.side.value} intent dropped: decided too long ago",
                             EventLevel.warning, _order_data(order))])
        return Outcome(OrderStatus.cancelled)

    # Risk guard, then sizing (both from the database; the sizing needs the market's precision).
    with session_scope() as session:
        run = session.get(Run, run.id)
        decision = check_order(session, run, order, price=run.last_price)
        _event(session, run.id, decision.event_kind, f"{order.side.value} {order.reason}: {decision.reason}",
               level=EventLevel.info if decision.allowed else EventLevel.warning,
               data={**decision.data, **_order_data(order)})
        session.commit()
        if not decision.allowed:
            _set_status(order.id, OrderStatus.rejected, f"risk guard: {decision.reason}",
                        only_from=(OrderStatus.intent, OrderStatus.submitted, OrderStatus.unknown))
            return Outcome(OrderStatus.rejected)
        raw = _raw_amount(session, order, run)
    amount = broker.amount_to_precision(order.symbol, raw)

    attempts = settings.LIVE_SEND_ATTEMPTS
    delay = settings.LIVE_BACKOFF_S
    for attempt in range(1, attempts + 1):
        # From here the order may exist on the exchange: it is never sent again without a look-up.
        _set_status(order.id, OrderStatus.submitted, None, bump_attempts=True, amount=amount)
        try:
            remote = broker.create_order(order.symbol, order.side.value, amount, order.client_order_id,
                                         type=order.type.value, price=order.price)
        except PAUSING as exc:
            if attempt > 1:
                # An earlier attempt may have been placed and not yet be visible (its refusal can even
                # be caused by it: funds already spent, a duplicate id): not "refused, never placed".
                # process_order keeps the order for reconciliation and pauses the run.
                raise
            raise _SendRefused(exc) from exc
        except TRANSIENT as exc:
            if _refused_key(exc):
                if attempt > 1:
                    raise
                raise _SendRefused(ccxt.AuthenticationError(str(exc))) from exc
            _set_status(order.id, OrderStatus.unknown, f"send {attempt}: {type(exc).__name__}")
            if attempt == attempts:
                raise
            time.sleep(delay)
            delay = min(8.0, delay * 2)
            remote = _lookup(broker, order)
            if remote is None:
                continue  # never placed: send again
        return Outcome(_adopt(broker, order, remote).status, sent=True)
    raise AssertionError("unreachable")


def _cancel(broker: CcxtBroker, order: Order) -> dict[str, Any] | None:
    try:
        retrying(lambda: broker.cancel_order(order.symbol, order.exchange_order_id, order.client_order_id),
                 what=f"cancel of {order.client_order_id}")
    except ccxt.InvalidOrder:
        pass  # already final on the exchange: the refresh below says how
    return _lookup(broker, order)


# ---------------------------------------------------------------------------------------------- runs

def pending_orders(run_ids: list[uuid.UUID] | None = None) -> list[uuid.UUID]:
    """Ids of live orders that are not final (of ``run_ids``, or all), oldest first."""
    with session_scope() as session:
        statement = (select(Order.id).join(Run, Run.id == Order.run_id)
                     .where(Run.mode == RunMode.live, Order.status.in_(LIVE_PENDING)).order_by(Order.created_at))
        if run_ids is not None:
            statement = statement.where(Order.run_id.in_(run_ids))
        return list(session.exec(statement).all())


def reconcile(run_ids: list[uuid.UUID] | None = None) -> dict[str, int]:
    """Drive every non-final live order (of ``run_ids``, or all) through :func:`process_order`, then
    close the position of every killed run that still holds one. One order's failure never stops the
    others. Returns counts by resulting status (``busy``: held by another process)."""
    counts: dict[str, int] = {}
    for order_id in pending_orders(run_ids):
        try:
            outcome = process_order(order_id)
        except Exception:  # noqa: BLE001 - one order must not stop the reconciliation of the others
            log.exception("reconciling order %s", order_id)
            counts["error"] = counts.get("error", 0) + 1
            continue
        key = "busy" if outcome.busy else (outcome.status.value if outcome.status else "none")
        counts[key] = counts.get(key, 0) + 1
    for run_id in killed_runs_holding(run_ids):
        try:
            close_position(run_id)
        except Exception:  # noqa: BLE001
            log.exception("closing the position of killed run %s", run_id)
    return counts


def killed_runs_holding(run_ids: list[uuid.UUID] | None = None) -> list[uuid.UUID]:
    with session_scope() as session:
        statement = select(Run.id).where(Run.mode == RunMode.live, Run.killed_at.is_not(None), Run.position_amount > 0)
        if run_ids is not None:
            statement = statement.where(Run.id.in_(run_ids))
        return list(session.exec(statement).all())


def close_position(run_id: uuid.UUID) -> Outcome | None:
    """The closing market sell of a killed run: written as an intent (client order id from the kill
    time, so a retried kill finds the same order) and driven through :func:`process_order`. Nothing
    when other orders of the run are still pending (they are resolved first) or it holds nothing."""
    with session_scope() as session:
        lock_for_write(session)
        run = session.exec(select(Run).where(Run.id == run_id).with_for_update()).one()
        info = _market_info(session, run)
        if run.killed_at is None or run.position_amount < max(info.amount_step or 0.0, info.min_amount or 0.0, 1e-12):
            session.rollback()  # nothing to sell (dust below one amount step cannot be sold)
            return None
        pending = session.exec(select(Order).where(Order.run_id == run.id, Order.status.in_(LIVE_PENDING))).all()
        kill_ms = int(run.killed_at.timestamp() * 1000)
        close = next((o for o in pending if o.reason == "kill"), None)
        if close is None:
            if pending:
                session.rollback()
                return None
            seq = len(session.exec(select(Order.id).where(Order.run_id == run.id, Order.reason == "kill",
                                                          Order.signal_candle_ms == kill_ms)).all())
            close = Order(run_id=run.id, client_order_id=client_order_id(run.id, kill_ms, "kill", seq),
                          symbol=run.symbol, side=OrderSide.sell, type=OrderType.market, amount=run.position_amount,
                          status=OrderStatus.intent, reason="kill", signal_candle_ms=kill_ms)
            session.add(close)
            _event(session, run.id, "kill", f"closing the position of {run.position_amount:g} at market",
                   level=EventLevel.warning, data={"client_order_id": close.client_order_id})
        session.commit()
        close_id = close.id
    return process_order(close_id)


def kill(run_id: uuid.UUID, *, close: bool) -> dict[str, Any]:
    """Carry out a kill or stop of a live run after its status was set (by the API): cancel its
    pending orders on the exchange, then, with ``close``, sell its position at market."""
    counts = reconcile([run_id])
    outcome = close_position(run_id) if close else None
    return {"orders": counts, "close": outcome.status.value if outcome and outcome.status else None}
