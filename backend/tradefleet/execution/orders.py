"""The live order manager: one order driven from intent to a final state, sent through
:class:`~tradefleet.execution.live.CcxtBroker`. Its fills are written by
:mod:`~tradefleet.execution.live_rows`, orders are made exclusive by
:mod:`~tradefleet.execution.order_leases` and reconciled by :mod:`~tradefleet.execution.reconcile`.

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

Mutual exclusion: one process works on an order at a time (``order_lease``: a PostgreSQL session advisory lock, released by the server when the holder's connection dies, e.g. on SIGKILL;
a process-local lock on SQLite, whose embedded mode runs one worker process). No database
transaction is open across a network call, and the run row is locked only to record fills.

Reconciliation (``reconcile``) runs every non-final live order through the same path: when a worker starts, periodically from beat, and before every live tick of its run. An order whose run is
no longer running is cancelled (on the exchange if it may be there), except a kill's closing sell.

Errors: ``InsufficientFunds``, ``InvalidOrder``, ``AuthenticationError``, ``PermissionDenied`` (and
the other :data:`~tradefleet.execution.live.PAUSING` errors) reject the order and pause its run with
the reason; the run's other orders and every other run carry on.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import ccxt
from sqlmodel import Session, select

from tradefleet.config import get_settings
from tradefleet.db import lock_for_write, session_scope
from tradefleet.execution.live import PAUSING, BrokerUnavailable, CcxtBroker, retrying
from tradefleet.execution.live_rows import (
    market_info,
    order_updates,
    pause_live_run,
    record_exchange_state,
    run_event,
)
from tradefleet.execution.order_leases import order_lease
from tradefleet.execution.paper import floor_to_step
from tradefleet.execution.risk import check_order
from tradefleet.market.exchange import TRANSIENT_ERRORS
from tradefleet.models import (
    ORDER_FINAL,
    EventLevel,
    Order,
    OrderReason,
    OrderSide,
    OrderStatus,
    Run,
    RunStatus,
)
from tradefleet.models._types import utcnow
from tradefleet.times import timeframe_ms

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- brokers

def broker_for_run(session: Session, run: Run) -> CcxtBroker:
    """The broker of the run's exchange account, its keys decrypted now (a worker, at the moment of
    use; :func:`tradefleet.execution.keys.live_broker_for_account`). Raises :class:`BrokerUnavailable`."""
    from tradefleet.execution.keys import live_broker_for_account

    if run.exchange_account_id is None:
        raise BrokerUnavailable("the run's exchange account was deleted")
    return live_broker_for_account(session=session, account_id=run.exchange_account_id)


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
            run_event(session, order.run_id, kind, message, level=level, data=data)
        run = session.exec(select(Run).where(Run.id == order.run_id).with_for_update()).one()
        if pause is not None:
            pause_live_run(session, run, pause)
        session.flush()
        updates = order_updates(session, run, order)
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
    return order.reason != OrderReason.kill and utcnow() - order.created_at > limit


def _wants_cancel(order: Order, run: Run) -> bool:
    return order.reason != OrderReason.kill and (run.status != RunStatus.running or run.killed_at is not None)


def _raw_amount(session: Session, order: Order, run: Run) -> float:
    """The base amount to send (before the exchange's precision): a buy spends its quote budget (fee
    included, at the run's last price), a sell sells what was asked, at most the position."""
    info = market_info(session, run)
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
    if order.status in ORDER_FINAL:
        return Outcome(order.status)
    with order_lease(order.client_order_id) as got:
        if not got:
            return Outcome(None, busy=True)
        order, run = _load(order_id)  # re-read under the lease
        if order.status in ORDER_FINAL:
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
        except TRANSIENT_ERRORS as exc:
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
        run_event(session, run.id, decision.event_kind, f"{order.side.value} {order.reason}: {decision.reason}",
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
        except TRANSIENT_ERRORS as exc:
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
