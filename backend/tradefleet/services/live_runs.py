"""Live runs and kill switches: validation of a live run, stop / kill of one run, the
trader's kill-all, and the admin's view of every run. Keyword-only, session first; commits.

The API never calls an exchange: stopping or killing a live run sets its status (and ``killed_at``)
here, commits, and enqueues ``live.kill_run``, which cancels the run's orders on the exchange and,
for a kill, sells the position at market (:func:`tradefleet.execution.reconcile.kill`). If the task is
lost, the periodic reconciliation does the same (an order of a run that is not running is cancelled;
a killed run holding a position is closed).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from tradefleet.config import get_settings
from tradefleet.errors import NotFoundError, PermissionDeniedError, validation_error
from tradefleet.db import lock_for_write
from tradefleet.execution.account import Intent, PaperAccount
from tradefleet.execution.ledger import RoundTrip
from tradefleet.execution.order_ids import client_order_id
from tradefleet.execution.paper import MarketRules, Wallet
from tradefleet.models import (
    EventLevel,
    ExchangeAccount,
    ExchangeMarket,
    Fill,
    Order,
    OrderSide,
    OrderStatus,
    OrderType,
    Run,
    RunCreate,
    RunEvent,
    RunMode,
    RunStatus,
    Trade,
    TradeStatus,
    User,
)
from tradefleet.models._types import utcnow
from tradefleet.models.exchange_account import KeyCheckStatus
from tradefleet.services import audit

log = logging.getLogger(__name__)

KILL_TASK = "live.kill_run"
ACTIVE = (RunStatus.created, RunStatus.running, RunStatus.paused)


# ---------------------------------------------------------------------------------------------- validation

def _check_account(*, session: Session, owner: User, account_id: uuid.UUID | None, exchange: str) -> ExchangeAccount:
    account = session.get(ExchangeAccount, account_id) if account_id is not None else None
    if account is None or account.owner_id != owner.id:
        # Another user's account is indistinguishable from one that does not exist.
        raise validation_error("exchange_account_id", "no such exchange account of yours")
    if account.exchange != exchange:
        raise validation_error("exchange_account_id", f"the account is for {account.exchange}, the run trades on {exchange}")
    if account.check_status != KeyCheckStatus.valid:
        detail = f" ({account.check_message})" if account.check_message else ""
        raise validation_error("exchange_account_id", f"the account's keys are not checked valid: "
                               f"{account.check_status.value}{detail}")
    return account


def _check_owner(owner: User) -> None:
    if get_settings().REQUIRE_VERIFIED_EMAIL_FOR_LIVE and not owner.is_verified:
        raise PermissionDeniedError("verify your e-mail address before trading live")


def check_live_run(*, session: Session, owner: User, run_in: RunCreate) -> None:
    """A live run needs a verified owner (``REQUIRE_VERIFIED_EMAIL_FOR_LIVE``, 403) and one of the
    owner's exchange accounts, on the run's exchange, whose keys were checked valid (422 on
    ``exchange_account_id`` otherwise)."""
    _check_owner(owner)
    _check_account(session=session, owner=owner, account_id=run_in.exchange_account_id, exchange=run_in.exchange)


def check_live_start(*, session: Session, owner: User, run: Run) -> None:
    """The checks of :func:`check_live_run` again when a live run starts (keys may have changed);
    a restarted run is no longer killed."""
    _check_owner(owner)
    _check_account(session=session, owner=owner, account_id=run.exchange_account_id, exchange=run.exchange)
    run.killed_at = None


# ---------------------------------------------------------------------------------------------- stop / kill

def enqueue_kill(run_id: uuid.UUID, *, close: bool) -> None:
    """Send ``live.kill_run`` (after the commit). A broker failure is logged, not raised: the periodic
    reconciliation carries the stop or kill out anyway."""
    from tradefleet.jobs.app import send_task

    try:
        send_task(KILL_TASK, str(run_id), close)
    except Exception as exc:  # noqa: BLE001 - any broker failure
        log.error("cannot enqueue %s for run %s: %s; reconciliation will do it", KILL_TASK, run_id, type(exc).__name__)


def _publish_status(run: Run, event: RunEvent) -> None:
    """The live update of a committed stop or kill (see ``services.runs._publish_status``)."""
    from tradefleet.services.runs import _publish_status as publish

    publish(run, event)


def stop_live_run(*, session: Session, run: Run, kill: bool, by: str = "owner", actor: User | None = None) -> Run:
    """Stop a live run (locked by the caller): status ``stopped``; with ``kill`` also ``killed_at``,
    so the worker sells the position at market. Commits, then enqueues the worker's part."""
    now = utcnow()
    already = run.status == RunStatus.stopped
    run.status = RunStatus.stopped
    run.stopped_at = run.stopped_at if already and run.stopped_at else now
    if kill:
        run.killed_at = run.killed_at or now
        run.status_reason = f"killed by {by}"
        message = f"run killed by {by}: cancelling its open orders and closing the position at market"
    else:
        run.status_reason = None if by == "owner" else f"stopped by {by}"
        message = f"run stopped by {by}; its open orders are being cancelled on the exchange"
    session.add(run)
    event = RunEvent(run_id=run.id, kind="killed" if kill else "stopped", message=message,
                     level=EventLevel.warning if kill else EventLevel.info)
    session.add(event)
    audit.record(session=session, actor=actor, action="run.killed" if kill else "run.stopped", target=run,
                 detail={"mode": run.mode.value, "by": by}, commit=False)
    session.commit()
    session.refresh(run)
    _publish_status(run, event)
    enqueue_kill(run.id, close=kill)
    return run


def _close_paper_position(*, session: Session, run: Run) -> str:
    """Sell a paper run's whole position at its last price through its paper account (the market's taker
    fee), writing the order, the fill and the closed trade. Returns the text the kill's event adds."""
    if run.position_amount <= 0 or run.last_price is None:
        return ""
    info = session.get(ExchangeMarket, (run.exchange, run.symbol))
    # A kill always closes the position. A market that has left the catalog has no known fee or
    # precision: it is sold as held, with no fee, and the kill's event says so.
    rules = MarketRules(taker=info.taker if info else 0.0, amount_step=info.amount_step if info else None)
    unknown = "" if info is not None else " (market not in the catalog: no fee charged)"
    wallet = Wallet(cash=run.cash, position_amount=run.position_amount, realised_pnl=run.realised_pnl,
                    fees_paid=run.fees_paid)
    trade = session.exec(select(Trade).where(Trade.run_id == run.id, Trade.status == TradeStatus.open)).first()
    account = PaperAccount(rules, wallet=wallet,
                           position=RoundTrip.from_trade(trade, run.position_amount) if trade is not None else None)
    now_ms = int(utcnow().timestamp() * 1000)
    account.fill_now(Intent("sell", "kill", now_ms), run.last_price, now_ms)
    events = account.take_events()
    if not events.fills:
        return ""
    fill = events.fills[0].fill
    seq = session.exec(select(func.count()).select_from(Order).where(Order.run_id == run.id, Order.reason == "kill")).one()
    order = Order(run_id=run.id, client_order_id=client_order_id(run.id, now_ms, "kill", int(seq) % 36),
                  symbol=run.symbol, side=OrderSide.sell, type=OrderType.market, amount=fill.amount,
                  status=OrderStatus.filled, reason="kill", signal_candle_ms=now_ms, filled=fill.amount,
                  average=fill.price, cost=fill.cost, fee=fill.fee, fee_currency=info.quote if info else None)
    session.add(order)
    session.flush()
    session.add(Fill(order_id=order.id, run_id=run.id, side=OrderSide.sell, time_ms=now_ms, price=fill.price,
                     amount=fill.amount, cost=fill.cost, fee=fill.fee, fee_currency=info.quote if info else ""))
    for closed in events.closed:
        session.add(closed.round_trip.close(time_ms=now_ms, reason="kill"))
    run.cash, run.position_amount, run.fees_paid, run.realised_pnl = (wallet.cash, wallet.position_amount,
                                                                      wallet.fees_paid, wallet.realised_pnl)
    run.position_entry_price = None
    return f"; sold {fill.amount:g} at {fill.price:g}{unknown}"


def kill_run_row(*, session: Session, run: Run, by: str = "owner", actor: User | None = None) -> Run:
    """Kill ``run`` (locked and authorised by the caller): stop it now, cancel its open orders and
    close its position at market. Live: carried out by a worker (``live.kill_run``). Paper: at once,
    the position sold at the run's last price with the market's taker fee. Commits."""
    if run.mode == RunMode.live:
        return stop_live_run(session=session, run=run, kill=True, by=by, actor=actor)
    now = utcnow()
    cancelled = 0
    for order in session.exec(select(Order).where(Order.run_id == run.id, Order.status == OrderStatus.open)):
        order.status, order.status_reason, order.updated_at = OrderStatus.cancelled, "run killed", now
        session.add(order)
        cancelled += 1
    sold = _close_paper_position(session=session, run=run)
    run.status, run.stopped_at, run.killed_at = RunStatus.stopped, now, now
    run.status_reason = f"killed by {by}"
    session.add(run)
    event = RunEvent(run_id=run.id, kind="killed", level=EventLevel.warning,
                     message=f"run killed by {by}; cancelled {cancelled} open order(s){sold}")
    session.add(event)
    audit.record(session=session, actor=actor, action="run.killed", target=run,
                 detail={"mode": run.mode.value, "by": by, "cancelled_orders": cancelled}, commit=False)
    session.commit()
    session.refresh(run)
    _publish_status(run, event)
    return run


def kill_all(*, session: Session, owner: User) -> int:
    """The trader's kill switch: stop every active run of ``owner`` (created, running, paused) and
    cancel their open orders (positions are kept; ``POST /runs/{id}/kill`` closes one). Returns how
    many runs it stopped."""
    from tradefleet.services.runs import stop_run_row

    lock_for_write(session)
    runs = session.exec(select(Run).where(Run.owner_id == owner.id, Run.status.in_(ACTIVE))
                        .order_by(Run.created_at).with_for_update()).all()
    ids = [run.id for run in runs]
    for run_id in ids:
        lock_for_write(session)
        run = session.exec(select(Run).where(Run.id == run_id).with_for_update()).one()
        if run.status in ACTIVE:
            stop_run_row(session=session, run=run, actor=owner, by="owner's kill switch")
    audit.record(session=session, actor=owner, action="run.kill_all", detail={"stopped": len(ids)})
    return len(ids)


# ---------------------------------------------------------------------------------------------- admin

def admin_get_run(*, session: Session, run_id: uuid.UUID, lock: bool = False) -> Run:
    statement = select(Run).where(Run.id == run_id)
    if lock:
        lock_for_write(session)
        statement = statement.with_for_update()
    run = session.exec(statement).first()
    if run is None:
        raise NotFoundError("run not found")
    return run


def admin_list_runs(*, session: Session, status: RunStatus | None = None, user: str | None = None,
                    limit: int = 100, offset: int = 0) -> tuple[list[tuple[Run, str]], int]:
    """Every user's runs, newest first, with their owner's e-mail; ``user`` matches an owner id or
    part of an e-mail (case-insensitive)."""
    statement = select(Run, User.email).join(User, User.id == Run.owner_id)
    counting = select(func.count()).select_from(Run).join(User, User.id == Run.owner_id)
    filters: list[Any] = []
    if status is not None:
        filters.append(Run.status == status)
    if user:
        try:
            filters.append(Run.owner_id == uuid.UUID(user))
        except ValueError:
            filters.append(func.lower(User.email).contains(user.lower()))
    for f in filters:
        statement, counting = statement.where(f), counting.where(f)
    count = session.exec(counting).one()
    rows = session.exec(statement.order_by(Run.created_at.desc()).offset(offset).limit(limit)).all()
    return [(run, email) for run, email in rows], count
