"""Celery tasks of live trading: reconciliation of live orders and the worker's part of a
stop or kill. Thin wrappers over :mod:`tradefleet.execution.orders`; each re-reads the database and
is safe to run twice or concurrently (one process works on an order at a time, see
:func:`tradefleet.execution.order_leases.order_lease`)."""

from __future__ import annotations

import logging
import uuid

from celery.signals import worker_ready

from tradefleet.market.exchange import NetworkError
from tradefleet.worker.app import celery_app

log = logging.getLogger(__name__)


@celery_app.task(name="live.reconcile", ignore_result=True)
def reconcile() -> dict[str, int]:
    """Drive every live order that is not final to a known state, cancel those whose run is no
    longer running, close the positions of killed runs (:func:`tradefleet.execution.reconcile.reconcile`).
    Fired by beat every ``RECONCILE_INTERVAL_S`` and once when a worker starts; acknowledged on
    receipt (a reconciliation lost with its worker is not worth redelivering: the next one comes
    anyway)."""
    from tradefleet.execution.reconcile import reconcile as _reconcile

    counts = _reconcile()
    if counts:
        log.info("reconciled live orders: %s", counts)
    return counts


@celery_app.task(name="live.process_order", ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def process_order(order_id: str, fresh: bool = False) -> str | None:
    """Drive one live order as far as it goes now (:func:`tradefleet.execution.orders.process_order`):
    send an intent a tick just committed (``fresh``), or resolve a pending one. Enqueued per order after
    the tick's commit, so no exchange call runs inside a market's tick. Safe to deliver twice: the order's
    lease and the look-up by client order id come before any send."""
    from tradefleet.execution.orders import process_order as _process_order

    outcome = _process_order(uuid.UUID(order_id), fresh=fresh)
    return outcome.status.value if outcome.status is not None else None


@celery_app.task(name="live.kill_run", bind=True, ignore_result=True, acks_late=True, reject_on_worker_lost=True,
                 max_retries=8)
def kill_run(self, run_id: str, close: bool) -> dict:
    """Cancel a stopped live run's orders on the exchange and, with ``close``, sell its position at
    market. Network errors retry with bounded backoff; whatever is left, reconciliation finishes."""
    from tradefleet.execution.reconcile import kill

    try:
        return kill(uuid.UUID(run_id), close=close)
    except NetworkError as exc:
        countdown = min(30, 2 ** self.request.retries)
        raise self.retry(exc=exc, countdown=countdown) from None


@worker_ready.connect
def _reconcile_on_start(sender=None, **kwargs) -> None:  # noqa: ARG001
    # A worker that starts (after a crash, say) resolves the orders its predecessor left in flight.
    reconcile.apply_async()
