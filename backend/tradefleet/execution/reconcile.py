"""Reconciliation of live orders with the exchange, and the closing sell of a killed run.

Every non-final live order goes through :func:`~tradefleet.execution.orders.process_order` (when a
worker starts, periodically from beat, before every live tick of its run); a killed run that still
holds a position gets one closing market sell, with a client order id from the kill time so that a
retried kill finds the same order.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlmodel import select

from tradefleet.db import lock_for_write, session_scope
from tradefleet.execution.live_rows import market_info, run_event
from tradefleet.execution.order_ids import client_order_id
from tradefleet.execution.orders import Outcome, process_order
from tradefleet.models import (
    LIVE_PENDING,
    EventLevel,
    Order,
    OrderReason,
    OrderSide,
    OrderStatus,
    OrderType,
    Run,
    RunMode,
)

log = logging.getLogger(__name__)


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
        info = market_info(session, run)
        if run.killed_at is None or run.position_amount < max(info.amount_step or 0.0, info.min_amount or 0.0, 1e-12):
            session.rollback()  # nothing to sell (dust below one amount step cannot be sold)
            return None
        pending = session.exec(select(Order).where(Order.run_id == run.id, Order.status.in_(LIVE_PENDING))).all()
        kill_ms = int(run.killed_at.timestamp() * 1000)
        close = next((o for o in pending if o.reason == OrderReason.kill), None)
        if close is None:
            if pending:
                session.rollback()
                return None
            seq = len(session.exec(select(Order.id).where(Order.run_id == run.id, Order.reason == OrderReason.kill,
                                                          Order.signal_candle_ms == kill_ms)).all())
            close = Order(run_id=run.id, client_order_id=client_order_id(run.id, kill_ms, OrderReason.kill, seq),
                          symbol=run.symbol, side=OrderSide.sell, type=OrderType.market, amount=run.position_amount,
                          status=OrderStatus.intent, reason=OrderReason.kill, signal_candle_ms=kill_ms)
            session.add(close)
            run_event(session, run.id, "kill", f"closing the position of {run.position_amount:g} at market",
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


__all__ = ["close_position", "kill", "killed_runs_holding", "pending_orders", "reconcile"]
