"""Celery tasks. Each takes ids and plain values, re-reads the world itself, and is safe to retry
(the Celery user guide, "Tasks: State" and "Database transactions")."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import asdict

from celery.signals import beat_init, worker_init, worker_process_init, worker_ready
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tradefleet.config import get_settings
from tradefleet.db import get_engine, session_scope
from tradefleet.engine.evaluate import MarketNotInCatalog
from tradefleet.engine.evaluate import evaluate_market as _evaluate_market
from tradefleet.engine.evaluate import pause_runs
from tradefleet.engine.schedule import plan
from tradefleet.market.candles import Market, MarketDataNotReady
from tradefleet.market.catalog import refresh_catalog
from tradefleet.market.exchange import PERMANENT_ERRORS, TRANSIENT_ERRORS, ExchangeError
from tradefleet.models import WorkerHeartbeat
from tradefleet.models._types import utcnow
from tradefleet.worker.app import celery_app

log = logging.getLogger(__name__)

# Errors after which a retry can succeed: the exchange is slow, down or rate-limiting us.
TRANSIENT = (*TRANSIENT_ERRORS, MarketDataNotReady)
# Errors that no retry fixes for this market: the exchange says the symbol or timeframe is wrong.
PERMANENT = PERMANENT_ERRORS


@celery_app.task(name="engine.schedule", ignore_result=True)
def schedule() -> int:
    """Dispatch the due evaluations (see :func:`tradefleet.engine.schedule.plan`); returns how many."""
    dispatches = plan()
    for d in dispatches:
        evaluate_market.apply_async(
            args=[d.market.exchange, d.market.symbol, d.market.timeframe, d.candle_ms,
                  [str(i) for i in d.run_ids], d.limit],
        )
    return len(dispatches)


def _drive_live_orders(report) -> None:
    """After a tick's commit, one ``live.process_order`` task per live intent it wrote and per live order it
    found still pending: sending and look-ups run off the tick, so a slow exchange account never delays
    the market's other runs. A pending order gets one such task at a time (a mark in the cache that lasts
    as long as a few exchange calls may); the periodic ``live.reconcile`` catches what falls through."""
    from tradefleet.cache import get_cache
    from tradefleet.worker.live import process_order

    cache = get_cache()
    hold_s = int(3 * get_settings().CCXT_TIMEOUT_MS / 1000) + 5
    for order_id in report.live_order_ids:
        cache.set(f"live:driving:{order_id}", b"1", hold_s)
        process_order.apply_async(args=[str(order_id), True])
    for order_id in report.live_pending_order_ids:
        if cache.add(f"live:driving:{order_id}", b"1", hold_s):
            process_order.apply_async(args=[str(order_id), False])


@celery_app.task(name="engine.evaluate_market", bind=True, acks_late=True, reject_on_worker_lost=True,
                 max_retries=5, ignore_result=True)
def evaluate_market(self, exchange: str, symbol: str, timeframe: str, candle_ms: int, run_ids: list[str],
                    limit: int) -> dict:
    """Tick ``run_ids`` of one market up to ``candle_ms``. Idempotent, so late acknowledgement is safe."""
    market = Market(exchange, symbol, timeframe)
    ids = [uuid.UUID(i) for i in run_ids]
    try:
        report = _evaluate_market(market, candle_ms, ids, limit=limit)
    except TRANSIENT as exc:
        # Bounded exponential backoff, kept short: the next candle's dispatch catches up anyway.
        countdown = min(30, 2 ** self.request.retries)
        log.warning("%s at %s: %s; retry in %ss", market.key, candle_ms, exc, countdown)
        raise self.retry(exc=exc, countdown=countdown) from None
    except PERMANENT as exc:
        pause_runs(ids, f"exchange rejected market {symbol} {timeframe}: {type(exc).__name__}: {exc}",
                   candle_ms=candle_ms)
        return {"market": market.key, "paused": len(ids)}
    except MarketNotInCatalog as exc:
        pause_runs(ids, f"{exc}: its fee and precision are unknown, so the run cannot trade", candle_ms=candle_ms)
        return {"market": market.key, "paused": len(ids)}
    log.info("evaluated %s", report)
    _drive_live_orders(report)
    if report.busy_run_ids:
        # Runs another task still holds (usually the previous candle's): evaluate them once it is
        # done, without parking this worker process on their row locks meanwhile.
        if self.request.retries < self.max_retries:
            countdown = min(2.0, 0.25 * 2 ** self.request.retries)
            raise self.retry(args=[exchange, symbol, timeframe, candle_ms, [str(i) for i in report.busy_run_ids],
                                   limit], countdown=countdown)
        log.warning("%s at %s: %d runs still busy after %d retries; the next candle catches them up",
                    market.key, candle_ms, report.busy, self.request.retries)
    result = asdict(report)
    result.pop("busy_run_ids")
    return result


@celery_app.task(name="market.refresh_catalogs", ignore_result=True, max_retries=3, bind=True)
def refresh_catalogs(self) -> dict[str, int]:
    """Reload the market catalog of every enabled exchange."""
    counts = {}
    for exchange_id in get_settings().EXCHANGES_ENABLED:
        try:
            with session_scope() as session:
                counts[exchange_id] = refresh_catalog(session=session, exchange_id=exchange_id)
        except (ExchangeError, OSError) as exc:
            log.warning("cannot load %s markets: %s", exchange_id, exc)
            raise self.retry(exc=exc, countdown=10) from None
    return counts


@celery_app.task(name="worker.heartbeat", ignore_result=True)
def heartbeat() -> None:
    """Record that a worker of this host is alive (read by ``GET /api/v1/health``)."""
    write_heartbeat()


@celery_app.task(name="runs.prune_stopped", ignore_result=True)
def prune_stopped_runs() -> int:
    """Delete settled stopped runs beyond ``RUN_MAX_STOPPED_PER_USER`` per user or older than
    ``RUN_RETENTION_DAYS`` (:mod:`tradefleet.services.retention`); returns how many."""
    from tradefleet.services.retention import prune_stopped_runs as prune

    with session_scope() as session:
        deleted = prune(session)
    if deleted:
        log.info("deleted %d stopped runs past retention", deleted)
    return deleted


def write_heartbeat() -> None:
    values = dict(hostname=f"{socket.gethostname()}:{os.getppid()}", pid=os.getpid(), beat_at=utcnow())
    engine = get_engine()
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    statement = insert(WorkerHeartbeat).values(**values)
    statement = statement.on_conflict_do_update(index_elements=["hostname"],
                                                set_=dict(pid=values["pid"], beat_at=values["beat_at"]))
    with engine.begin() as connection:
        connection.execute(statement)


@worker_ready.connect
def _on_worker_ready(sender=None, **kwargs) -> None:  # noqa: ARG001
    # Load the market catalogs as soon as a worker is up, so new runs can be validated.
    write_heartbeat()
    refresh_catalogs.apply_async()
    _sync_bundled_strategies()
    _requeue_stale_validations()


# --- backtests ------------------------------------------------------------------------------------


@celery_app.task(name="backtest.run", ignore_result=True)
def run_backtest(backtest_id: str) -> str | None:
    """Run the queued backtest ``backtest_id`` (:func:`tradefleet.services.backtest_execution.execute_backtest`):
    it re-reads the row, claims it (``queued`` → ``running``), and stores the result or the failure.
    Acknowledged on receipt, not late: a second delivery finds the row no longer queued and does nothing."""
    from tradefleet.services.backtest_execution import execute_backtest

    status = execute_backtest(uuid.UUID(backtest_id))
    return status.value if status is not None else None


@celery_app.task(name="backtest.expire", ignore_result=True)
def expire_backtests() -> dict[str, int]:
    """Hourly (beat): delete finished backtests older than ``BACKTEST_RETENTION_DAYS``
    (:func:`tradefleet.services.backtests.expire_backtests`); returns the rows deleted."""
    from tradefleet.services.backtests import expire_backtests as _expire

    return _expire()


# --- strategy uploads -----------------------------------------------------------------------------


@celery_app.task(name="strategies.validate", ignore_result=True, max_retries=0,
                 soft_time_limit=get_settings().STRATEGY_VALIDATION_TIMEOUT_S + 30)
def validate_strategy(version_id: str) -> str | None:
    """Validate the uploaded strategy version ``version_id`` in the sandbox
    (:func:`tradefleet.services.strategy_validation.validate_version`): ``pending_review`` or ``invalid``
    with its report. Acknowledged on receipt; a second delivery finds it no longer ``validating`` and
    does nothing, and a validation lost with its worker is queued again when a worker starts."""
    from tradefleet.services.strategy_validation import validate_version

    status = validate_version(uuid.UUID(version_id))
    return status.value if status is not None else None


def _requeue_stale_validations() -> None:
    from tradefleet.services.strategy_validation import stale_validations

    try:
        for version_id in stale_validations(get_settings().STRATEGY_VALIDATION_TIMEOUT_S + 60):
            validate_strategy.apply_async(args=[str(version_id)])
    except Exception:  # noqa: BLE001 - never keep a worker from starting
        log.exception("cannot queue the strategy validations left unfinished")


def _sync_bundled_strategies() -> None:
    # Files of STRATEGIES_DIR become strategy versions before the first tick pins runs stored before
    # versions existed.
    from tradefleet.services.strategy_catalog import sync_bundled

    try:
        with session_scope() as session:
            sync_bundled(session=session)
    except Exception:  # noqa: BLE001 - never keep a worker from starting
        log.exception("cannot record the bundled strategies as versions")


# --- exchange keys -----------------------------------------------------------------------


@worker_init.connect
def _report_sandbox(**kwargs) -> None:  # noqa: ARG001
    # Strategy code runs only in sandboxed runner processes; say at start-up if they cannot be made here.
    from tradefleet.sandbox import sandbox_status

    status = sandbox_status()
    if status.available:
        log.info("strategy sandbox: %s", status.mode)
    else:
        log.warning("strategy sandbox unavailable: %s; %s", status.reason,
                    "bundled strategies run unsandboxed (STRATEGY_SANDBOX_ALLOW_UNSANDBOXED_BUNDLED)"
                    if status.mode == "unsandboxed" else "no strategy code will run")


@worker_process_init.connect
def _start_strategy_runners(**kwargs) -> None:  # noqa: ARG001
    # Each pool process starts the runners of STRATEGIES_DIR as it comes up, so that its first tick does
    # not wait for them. In a thread: Celery gives a pool process a few seconds to report itself up, and
    # a task that needs the registry meanwhile waits for its lock. A failure is the registry's to record.
    import threading

    from tradefleet.sandbox.registry import get_registry

    def warm() -> None:
        try:
            get_registry()
        except Exception:  # noqa: BLE001
            log.exception("starting the strategy runners failed")

    threading.Thread(target=warm, name="strategy-runners", daemon=True).start()


@worker_init.connect
@worker_process_init.connect
def _unlock_vault(**kwargs) -> None:  # noqa: ARG001
    # Workers decrypt exchange keys at the moment of use; the API process never unlocks (SECRETS.md).
    from tradefleet.security.vault import unlock_decryption

    unlock_decryption()


@beat_init.connect
def _beat_holds_no_private_key(**kwargs) -> None:  # noqa: ARG001
    # Beat only schedules: like the API it must not hold a key that opens stored exchange keys
    # (SECRETS.md). In production a standalone beat given one exits; elsewhere it logs an error.
    import sys

    from tradefleet.config import decryption_keys_held

    held = decryption_keys_held(get_settings())
    if not held or "worker" in sys.argv[1:]:  # a worker's embedded beat (-B) is that worker
        return
    message = f"celery beat must not hold {' or '.join(held)}: remove them from its environment"
    if get_settings().ENVIRONMENT == "production":
        log.critical("refusing to start: %s", message)
        raise SystemExit(f"refusing to start: {message}")
    log.error("%s (allowed outside production only)", message)


@celery_app.task(name="keys.check", ignore_result=True, max_retries=0)
def check_keys(account_id: str) -> str | None:
    """Connect with the account's keys and record ``valid`` / ``invalid`` / ``error``
    (:func:`tradefleet.execution.keys.check_account`). Re-reads the row; a second delivery checks again,
    which is harmless. Acknowledged on receipt: a check lost with its worker is asked again by the
    trader (``POST /exchange-accounts/{id}/check``)."""
    from tradefleet.execution.keys import check_account

    status = check_account(uuid.UUID(account_id))
    return status.value if status is not None else None
