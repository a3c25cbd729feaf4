"""Evaluating every due run of one market on its newly closed candle(s).

One call handles one batch of runs of one market. It fetches the candle window once (cached by
market and candle time), then for each run, for each candle the run has not seen yet (oldest
first): fills the run's pending orders at that candle's open, applies the stoploss on its low,
reads the strategy's signals for that candle, writes order intents, and snapshots equity at the
close. All of a batch's writes commit in one transaction.

Cost (the fleet benchmark, ``bench/fleet.py``): a tick is dominated by the strategy's own
``signals()``; around it the engine keeps per-run work small. Runs are read and written as plain
rows (one ``SELECT ... FOR UPDATE`` and one executemany ``UPDATE`` per batch, no ORM unit of work),
snapshots, fills and events are bulk inserts, a run's validated parameters and window size are
remembered per process (keyed by the strategy class, so an edited strategy file is re-validated),
and only the two signal columns of the strategy's output are read, as arrays. Orders and trades,
written on a small fraction of ticks, stay ORM objects.

Idempotence: each run row is locked (``SELECT ... FOR UPDATE``) and re-read; candles at or before
its ``last_candle_ms`` are skipped, and ``(run_id, candle_ms)`` is unique in ``equity_snapshot``,
so a task delivered twice changes nothing the second time.

Runs whose row another transaction holds (the previous candle's task of the same runs, still
running; a stop from the API) are skipped, not waited for (``SKIP LOCKED``), and listed in the
report's ``busy_run_ids``: the Celery task evaluates them again shortly. Waiting would park a worker
process on a row lock while other markets' tasks queue, which turns a short overload into a
growing backlog.

The parts: :mod:`~tradefleet.engine.window` (the candle window and the catch-up rule),
:mod:`~tradefleet.engine.signals` (strategies and their signals, shared per tick),
:mod:`~tradefleet.engine.paper_tick` and :mod:`~tradefleet.engine.live_tick` (the two decisions),
:mod:`~tradefleet.engine.tick_rows` (decisions as rows), :mod:`~tradefleet.engine.run_rows` (the run
as a plain row) and :mod:`~tradefleet.engine.live_updates` (what the browser hears). This module
keeps the orchestration: lock, read, tick, write, publish.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from tradefleet.config import get_settings
from tradefleet.db import lock_for_write, session_scope
from tradefleet.engine.live_tick import tick_live
from tradefleet.engine.live_updates import pause_updates, tick_updates
from tradefleet.engine.paper_tick import tick_paper
from tradefleet.engine.run_rows import RowBuffer, RunRow, market_rules, pause_run
from tradefleet.engine.signals import TickSignals
from tradefleet.engine.tick_rows import TickReport, TickRows
from tradefleet.engine.window import TickWindow
from tradefleet.execution.paper import PaperBroker
from tradefleet.market.candles import Market, get_candles
from tradefleet.models import (
    LIVE_PENDING,
    EquitySnapshot,
    ExchangeMarket,
    Fill,
    Order,
    OrderStatus,
    Run,
    RunEvent,
    RunMode,
    RunStatus,
    Trade,
    TradeStatus,
)
from tradefleet.strategy.guard import StrategyError

log = logging.getLogger(__name__)


class MarketNotInCatalog(LookupError):
    """The market a run trades has no catalog entry (fees and precision unknown): nothing is ticked."""


def _lock_runs(session: Session, run_ids: list[uuid.UUID], report: TickReport) -> list[RunRow]:
    """The running runs among ``run_ids``, each row locked (``FOR UPDATE SKIP LOCKED``); the running ones
    another transaction holds go to ``report.busy_run_ids``, to be evaluated again shortly."""
    table = Run.__table__
    runs = [RunRow(row) for row in session.execute(
        select(*(table.c[name] for name in RunRow.COLUMNS))
        .where(table.c.id.in_(run_ids), table.c.status == RunStatus.running)
        .order_by(table.c.id).with_for_update(skip_locked=True)
    )]
    if len(runs) < len(run_ids):
        seen = {run.id for run in runs}
        rest = [i for i in run_ids if i not in seen]
        report.busy_run_ids = list(session.execute(
            select(table.c.id).where(table.c.id.in_(rest), table.c.status == RunStatus.running)).scalars())
        report.busy = len(report.busy_run_ids)
    return runs


def _pending_orders(session: Session, runs: list[RunRow], report: TickReport) -> dict[uuid.UUID, list[Order]]:
    """Per run, the orders not resolved yet, oldest first: a paper run's open orders (they fill at the
    next open), a live run's orders in any pending state (listed in ``report.live_pending_order_ids``
    for the caller to have them resolved off the tick)."""
    pending: dict[uuid.UUID, list[Order]] = defaultdict(list)
    live = [run.id for run in runs if run.mode == RunMode.live]
    paper = [run.id for run in runs if run.mode != RunMode.live]
    if paper:
        for order in session.exec(select(Order).where(Order.run_id.in_(paper), Order.status == OrderStatus.open)
                                  .order_by(Order.created_at)):
            pending[order.run_id].append(order)
    if live:
        for order in session.exec(select(Order).where(Order.run_id.in_(live), Order.status.in_(LIVE_PENDING))
                                  .order_by(Order.created_at)):
            pending[order.run_id].append(order)
        report.live_pending_order_ids = [order.id for run_id in live for order in pending[run_id]]
    return pending


def _halt_reason(session: Session) -> str | None:
    """Why live trading is halted by an admin, or None."""
    from tradefleet.execution.risk import get_halt

    halt = get_halt(session)
    return f"trading is halted by an admin{': ' + halt.reason if halt.reason else ''}" if halt.halted else None


def evaluate_market(market: Market, candle_ms: int, run_ids: list[uuid.UUID], *, limit: int) -> TickReport:
    """Tick the given runs of ``market`` up to the candle opening at ``candle_ms``.

    ``limit`` is the window the scheduler sized for these runs (startup candles plus catch-up).
    Runs that are no longer running are skipped. A strategy that raises, times out or returns bad
    signals pauses its own run only. Raises ccxt errors and ``MarketDataNotReady`` from the fetch
    (the Celery task retries those), and :class:`MarketNotInCatalog`, before anything is written.
    """
    started = time.perf_counter()
    report = TickReport(market=market.key, candle_ms=candle_ms)
    window = TickWindow(market, get_candles(market, until_ms=candle_ms, limit=limit))
    # No exchange call of a live order happens here: a tick only reads the database, decides and
    # writes. A live run with an order still pending takes no decision (tick_live); the caller has its
    # orders driven, off the tick, and new intents sent (report.live_order_ids, live_pending_order_ids).
    buffer = RowBuffer()
    with session_scope() as session:
        lock_for_write(session)
        info = session.get(ExchangeMarket, (market.exchange, market.symbol))
        if info is None:
            raise MarketNotInCatalog(f"market {market.exchange} {market.symbol} is not in the catalog")
        runs = _lock_runs(session, run_ids, report)
        pending = _pending_orders(session, runs, report)
        halted = _halt_reason(session) if any(run.mode == RunMode.live for run in runs) else None
        trades: dict[uuid.UUID, Trade] = {}
        if runs:
            trades = {t.run_id: t for t in session.exec(
                select(Trade).where(Trade.run_id.in_([run.id for run in runs]), Trade.status == TradeStatus.open))}
        signals = TickSignals(session, window, get_settings())
        rows = TickRows(session, info, PaperBroker(market_rules(info)), buffer, report)
        signals.prefetch(runs)
        paused: list[RunRow] = []
        for run in runs:
            report.runs += 1
            try:
                if run.mode == RunMode.live:
                    tick_live(run, pending[run.id], trades.get(run.id), halted=halted, window=window,
                              signals=signals, rows=rows)
                else:
                    tick_paper(run, pending[run.id], trades.get(run.id), window=window, signals=signals, rows=rows)
            except StrategyError as exc:
                report.paused += 1
                pause_run(run, str(exc), buffer, candle_ms=candle_ms)
                paused.append(run)
        try:
            session.flush()  # orders and trades (ORM objects)
            ticked = [run.ticked_values() for run in runs if run.ticked]
            if ticked:
                session.execute(update(Run), ticked)  # executemany, by primary key
            if paused:
                session.execute(update(Run), [{"id": run.id, "status": run.status,
                                               "status_reason": run.status_reason} for run in paused])
            if buffer.snapshots:
                session.execute(insert(EquitySnapshot), buffer.snapshots)
            fill_ids: list[int] = []
            event_ids: list[int] = []
            if buffer.fills:
                fill_ids = list(session.execute(
                    insert(Fill).returning(Fill.id, sort_by_parameter_order=True), buffer.fills).scalars())
            if buffer.events:
                event_ids = list(session.execute(
                    insert(RunEvent).returning(RunEvent.id, sort_by_parameter_order=True), buffer.events).scalars())
            updates = tick_updates(runs, window, rows, buffer, fill_ids, event_ids, paused)
            session.commit()
        except IntegrityError:
            # (run_id, candle_ms) or a client order id already exists: another delivery of this
            # tick committed first. Nothing of ours is written; the tick is done.
            session.rollback()
            log.warning("%s %s: tick already recorded by another task; nothing written", market.key, candle_ms)
            return TickReport(market=market.key, candle_ms=candle_ms)
    updates.publish()  # after the commit: a browser never hears of a tick that was rolled back
    report.seconds = time.perf_counter() - started
    return report


def send_live_intents(order_ids: list[uuid.UUID]) -> None:
    """Send live intents one by one, in this process (no lock held): what the ``live.process_order``
    tasks do, for callers without a worker (the CLI, tests). One order's failure (exchange down, keys
    refused) never stops the others: the order keeps a state that reconciliation resolves, or its run
    is paused with the reason."""
    from tradefleet.execution.orders import process_order

    for order_id in order_ids:
        try:
            process_order(order_id, fresh=True)
        except Exception:  # noqa: BLE001 - the next reconciliation picks the order up
            log.exception("sending live order %s", order_id)


def pause_runs(run_ids: list[uuid.UUID], reason: str, *, candle_ms: int | None = None) -> int:
    """Pause the running runs among ``run_ids`` with ``reason`` (one event each); returns how many."""
    buffer = RowBuffer()
    with session_scope() as session:
        lock_for_write(session)
        runs = session.exec(select(Run).where(Run.id.in_(run_ids), Run.status == RunStatus.running)
                            .with_for_update()).all()
        for run in runs:
            pause_run(run, reason, buffer, candle_ms=candle_ms)
        session.flush()
        event_ids: list[int] = []
        if buffer.events:
            event_ids = list(session.execute(insert(RunEvent).returning(RunEvent.id, sort_by_parameter_order=True),
                                             buffer.events).scalars())
        box = pause_updates(list(runs), buffer.events, event_ids)
        session.commit()
    box.publish()
    return len(runs)


__all__ = ["MarketNotInCatalog", "TickReport", "evaluate_market", "pause_runs", "send_live_intents"]
