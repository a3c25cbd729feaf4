"""Strategy runs in both modes (paper and live): create, start, stop, kill, the trader's kill switch,
moving a run to another version, and the owner's reads. Keyword-only, session first; commits.

Every owner-facing operation takes the owner and filters on it, so another user's run is indistinguishable
from a run that does not exist (404). The ``*_row`` functions act on a run the caller already locked and
authorised (the admin's operations, :mod:`tradefleet.services.admin_runs`, use them).

What only a live run needs is in :mod:`tradefleet.services.live_runs`: the owner and exchange-account
checks at creation and start, and handing a stop or kill to a worker. The API never calls an exchange:
stopping or killing a live run sets its status (and ``killed_at``) here, commits, and enqueues
``live.kill_run``, which cancels the run's orders on the exchange and, for a kill, sells the position
at market (:func:`tradefleet.execution.reconcile.kill`); if the task is lost, the periodic
reconciliation does the same. A paper run is stopped or killed here at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import func
from sqlmodel import Session, SQLModel, select

from tradefleet.services import strategies as strategy_switches
from tradefleet.services.ownership import get_owned_or_404
from tradefleet.errors import ConflictError, DomainError, validation_error
from tradefleet.config import get_settings
from tradefleet.db import lock_for_write
from tradefleet.execution.account import PendingOrder, CandleAccount
from tradefleet.execution.ledger import RoundTrip
from tradefleet.execution.order_ids import client_order_id
from tradefleet.execution.paper import MarketRules, Wallet
from tradefleet.market.catalog import catalog_loaded, get_market_info
from tradefleet.events.outbox import Outbox
from tradefleet.events.updates import FillUpdate, LogUpdate, OrderUpdate, StatusUpdate, TradeUpdate
from tradefleet.models import (
    EquitySnapshot,
    EventLevel,
    ExchangeMarket,
    Fill,
    Order,
    OrderReason,
    OrderSide,
    OrderStatus,
    OrderType,
    Run,
    RunCreate,
    StrategyVersion,
    VersionStatus,
    RunEvent,
    RunMode,
    RunStatus,
    Trade,
    TradeStatus,
    User,
)
from tradefleet.models._types import utcnow
from tradefleet.services import audit, live_runs
from tradefleet.services.quotas import lock_owner
from tradefleet.services import strategy_catalog
from tradefleet.strategy.guard import StrategyError
from tradefleet.strategy.params import ParamError

T = TypeVar("T", bound=SQLModel)


class ServiceUnavailable(DomainError):
    status_code = 503
    detail = "service unavailable"


def validated_params(*, session: Session, version: StrategyVersion, raw: dict[str, Any] | None) -> dict[str, Any]:
    """``raw`` checked by the strategy of ``version`` (its own validation, in its runner); returns the
    parameters with defaults filled in. 422 on ``params.<name>`` for a bad parameter, on ``strategy``
    when the version's code cannot be run here (the sandbox refuses it) or misbehaves."""
    try:
        proxy = strategy_catalog.strategy_for_version(version.id, session=session)
        return proxy.validate_params(raw)
    except ParamError as exc:
        raise validation_error(f"params.{exc.field}", exc.message) from exc
    except StrategyError as exc:
        raise validation_error("strategy", f"the strategy's parameter check failed: {exc}") from exc
    except Exception as exc:  # StrategyLoadError, SandboxUnavailable: the code cannot be loaded here
        from tradefleet.sandbox import SandboxUnavailable, StrategyLoadError

        if isinstance(exc, (StrategyLoadError, SandboxUnavailable)):
            raise validation_error("strategy", f"strategy {version.name!r} cannot be run here: "
                                   f"{getattr(exc, 'message', None) or exc}") from exc
        raise


def validate_run(*, session: Session, run_in: RunCreate) -> tuple[dict[str, Any], StrategyVersion]:
    """Check a new run against the strategy catalog and the exchange's market catalog.

    Returns the run's parameters with defaults filled in and the strategy version it pins
    (``strategy_version_id`` when given, else the latest approved version of ``strategy``). Raises a
    422 naming the field for an unknown exchange, strategy, strategy version, symbol or timeframe, a
    parameter of the wrong type or out of range, a stake below the market's minimum order, or a mode
    this platform cannot run yet; 503 when the exchange's market catalog has not been loaded by a
    worker yet.
    """
    settings = get_settings()
    if run_in.exchange not in settings.EXCHANGES_ENABLED:
        raise validation_error("exchange", f"exchange {run_in.exchange!r} is not enabled on this platform "
                               f"(enabled: {', '.join(settings.EXCHANGES_ENABLED)})")
    if run_in.mode == RunMode.paper and run_in.exchange_account_id is not None:
        # Paper runs never hold credentials.
        raise validation_error("exchange_account_id", "paper runs take no exchange account; use mode \"live\"")
    if run_in.mode == RunMode.live and run_in.exchange_account_id is None:
        raise validation_error("exchange_account_id", "a live run needs one of your exchange accounts")
    version = strategy_catalog.resolve_version(session=session, name=run_in.strategy,
                                               version_id=run_in.strategy_version_id)
    params = validated_params(session=session, version=version, raw=run_in.params)
    if not catalog_loaded(session=session, exchange_id=run_in.exchange):
        raise ServiceUnavailable(f"the markets of {run_in.exchange} are not loaded yet; try again shortly")
    info = get_market_info(session=session, exchange_id=run_in.exchange, symbol=run_in.symbol)
    if info is None or not info.active:
        raise validation_error("symbol", f"{run_in.exchange} has no active market {run_in.symbol!r} "
                               "(use ccxt's unified notation, e.g. BTC/USDT)")
    if run_in.timeframe not in info.timeframes:
        raise validation_error("timeframe", f"{run_in.exchange} has no timeframe {run_in.timeframe!r} "
                               f"(available: {', '.join(info.timeframes)})")
    if info.min_cost and run_in.stake < info.min_cost:
        raise validation_error("stake", f"must be at least the market's minimum order of {info.min_cost} {info.quote}")
    return params, version


def _check_active_limit(session: Session, owner: User) -> None:
    """409 naming ``MAX_RUNS_PER_USER`` when the owner already has that many active runs (call under
    :func:`~tradefleet.services.quotas.lock_owner`)."""
    active = session.exec(
        select(func.count()).select_from(Run).where(Run.owner_id == owner.id, Run.status.in_(RunStatus.ACTIVE))
    ).one()
    limit = get_settings().MAX_RUNS_PER_USER
    if active >= limit:
        raise ConflictError(f"you already have {active} active runs (limit {limit}, MAX_RUNS_PER_USER); "
                            "stop one first")


def create_run(*, session: Session, owner: User, run_in: RunCreate) -> Run:
    """Validate and store a new run (status ``created``; its wallet holds the stake in cash)."""
    params, version = validate_run(session=session, run_in=run_in)
    if run_in.mode == RunMode.live:
        live_runs.check_live_run(session=session, owner=owner, run_in=run_in)
    lock_owner(session, owner.id)  # held to the commit: parallel creations count one after another
    _check_active_limit(session, owner)
    run = Run(owner_id=owner.id, strategy=run_in.strategy, params=params, exchange=run_in.exchange,
              symbol=run_in.symbol, timeframe=run_in.timeframe, mode=run_in.mode, stake=run_in.stake,
              cash=run_in.stake, exchange_account_id=run_in.exchange_account_id, strategy_version_id=version.id)
    session.add(run)
    event = RunEvent(run_id=run.id, kind="created", message=f"created {run.strategy} v{version.version} on {run.symbol} "
                     f"{run.timeframe} ({run.mode.value}, stake {run.stake:g})")
    session.add(event)
    session.commit()
    session.refresh(run)
    _publish_status(run, event)
    return run


def get_run_or_404(*, session: Session, owner: User, run_id: uuid.UUID, lock: bool = False) -> Run:
    """The owner's run; 404 if it does not exist or belongs to someone else. ``lock``: a tick may be
    writing this run, so take its row (PostgreSQL) or the write lock (SQLite)."""
    return get_owned_or_404(session=session, model=Run, row_id=run_id, owner_id=owner.id, what="run", lock=lock)


def list_runs(*, session: Session, owner: User, skip: int = 0, limit: int = 100) -> tuple[list[Run], int]:
    """The owner's runs, newest first, and their total count."""
    count = session.exec(select(func.count()).select_from(Run).where(Run.owner_id == owner.id)).one()
    runs = session.exec(select(Run).where(Run.owner_id == owner.id).order_by(Run.created_at.desc())
                        .offset(skip).limit(limit)).all()
    return list(runs), count


def start_run(*, session: Session, owner: User, run_id: uuid.UUID) -> Run:
    """Set the run running from the next closed candle. 409 if it is already running; 422 if its
    strategy or parameters are no longer valid."""
    # Ownership first (another user's run: a 404 that changes nothing), then, before the row lock, the
    # bundled files as versions (which may commit).
    get_run_or_404(session=session, owner=owner, run_id=run_id)
    strategy_catalog.sync_bundled(session=session)
    lock_owner(session, owner.id)  # before the run's row, as every quota check takes them
    run = get_run_or_404(session=session, owner=owner, run_id=run_id, lock=True)
    if run.status == RunStatus.running:
        raise ConflictError("run is already running")
    if run.status == RunStatus.stopped:  # a stopped run started again becomes active: it counts
        _check_active_limit(session, owner)
    strategy_catalog.ensure_available(session, run.strategy)
    version = _pinned_version(session, run)
    validated_params(session=session, version=version, raw=run.params)
    if run.mode == RunMode.live:
        live_runs.check_live_start(session=session, owner=owner, run=run)
    run.status = RunStatus.running
    run.status_reason = None
    run.started_at = utcnow()
    run.stopped_at = None
    # Start from the market's latest closed candle, not from where a previous start left off.
    run.last_candle_ms = None
    event = RunEvent(run_id=run.id, kind="started", message="run started")
    session.add(event)
    audit.record(session=session, actor=owner, action="run.started", target=run,
                 detail={"mode": run.mode.value, "strategy": run.strategy}, commit=False)
    session.commit()
    session.refresh(run)
    _publish_status(run, event)
    return run


def _pinned_version(session: Session, run: Run) -> StrategyVersion:
    """The run's version; a run stored before versions is pinned here to the current bundled version of
    its strategy (422 on ``strategy`` when there is none)."""
    version_id = strategy_catalog.pinned_version_id(session, name=run.strategy, version_id=run.strategy_version_id)
    version = session.get(StrategyVersion, version_id) if version_id is not None else None
    if version is None:
        raise validation_error("strategy", f"strategy {run.strategy!r} is no longer available")
    run.strategy_version_id = version.id
    return version


def move_run_version(*, session: Session, owner: User, run_id: uuid.UUID, version_id: uuid.UUID) -> Run:
    """Pin the owner's run to another approved version of its strategy and commit; its parameters are
    validated again by that version (defaults of new parameters filled in).

    404 for another user's run; 409 while the run is running (a running run never changes code: stop it
    first); 422 on ``version_id`` for anything but an approved version of the run's strategy, on
    ``params.<name>`` when the run's parameters are invalid for it, on ``strategy`` when it is disabled.
    """
    # Ownership first (another user's run: a 404 that changes nothing), then, before the row lock, the
    # bundled files as versions (which may commit).
    get_run_or_404(session=session, owner=owner, run_id=run_id)
    strategy_catalog.sync_bundled(session=session)
    run = get_run_or_404(session=session, owner=owner, run_id=run_id, lock=True)
    if run.status == RunStatus.running:
        raise ConflictError("the run is running: stop it before moving it to another version")
    version = session.get(StrategyVersion, version_id)
    if version is None or version.status != VersionStatus.approved or version.name != run.strategy:
        raise validation_error("version_id", f"not an approved version of {run.strategy!r}")
    strategy_switches.ensure_enabled(session, run.strategy)
    previous = session.get(StrategyVersion, run.strategy_version_id) if run.strategy_version_id else None
    params = validated_params(session=session, version=version, raw=run.params)
    run.strategy_version_id = version.id
    run.params = params
    message = (f"moved from version {previous.version} to version {version.version}" if previous is not None
               else f"pinned to version {version.version}")
    event = RunEvent(run_id=run.id, kind="version", message=message,
                     data={"strategy_version_id": str(version.id), "version": version.version})
    session.add(event)
    audit.record(session=session, actor=owner, action="run.version_changed", target=run,
                 detail={"strategy": run.strategy, "version": version.version,
                         "from_version": previous.version if previous is not None else None}, commit=False)
    session.commit()
    session.refresh(run)
    _publish_status(run, event)
    return run


# ---------------------------------------------------------------------------------------------- stop / kill

def stop_run(*, session: Session, owner: User, run_id: uuid.UUID) -> Run:
    """Stop the owner's run and cancel its open orders. The position is kept (and reported); stopping a
    stopped run changes nothing. 404 for another user's run."""
    run = get_run_or_404(session=session, owner=owner, run_id=run_id, lock=True)
    return stop_run_row(session=session, run=run, actor=owner)


def stop_run_row(*, session: Session, run: Run, actor: User | None = None, by: str = "owner") -> Run:
    """Stop ``run`` (a row the caller locked and authorised): status ``stopped``, the position kept;
    a stopped run is returned unchanged. Paper: its open orders are cancelled here. Live: they are
    cancelled on the exchange by a worker, and a stop ``by`` anyone but the owner is the run's
    ``status_reason``. ``actor`` (the owner or an admin) is recorded in the audit log, ``by`` in the
    run's event and the audit detail. Commits, then publishes the change; for a stopped run the commit
    only ends the transaction, releasing the caller's lock."""
    if run.status == RunStatus.stopped:
        session.commit()
        return run
    if run.mode == RunMode.live:
        return _stop_live_run(session=session, run=run, kill=False, actor=actor, by=by)
    now = utcnow()
    cancelled: list[Order] = []
    for order in session.exec(select(Order).where(Order.run_id == run.id, Order.status == OrderStatus.open)):
        order.status = OrderStatus.cancelled
        order.status_reason = "run stopped"
        order.updated_at = now
        cancelled.append(order)
    run.status = RunStatus.stopped
    run.stopped_at = now
    message = "run stopped" + (f"; cancelled {len(cancelled)} open order(s)" if cancelled else "")
    event = RunEvent(run_id=run.id, kind="stopped", message=message, level=EventLevel.info)
    session.add(event)
    audit.record(session=session, actor=actor, action="run.stopped", target=run,
                 detail={"cancelled_orders": len(cancelled), "by": by}, commit=False)
    session.commit()
    session.refresh(run)
    _publish_status(run, event, orders=cancelled)
    return run


def kill_run(*, session: Session, owner: User, run_id: uuid.UUID) -> Run:
    """Kill the owner's run: see :func:`kill_run_row`. 404 for another user's run."""
    run = get_run_or_404(session=session, owner=owner, run_id=run_id, lock=True)
    return kill_run_row(session=session, run=run, actor=owner)


def kill_run_row(*, session: Session, run: Run, by: str = "owner", actor: User | None = None) -> Run:
    """Kill ``run`` (locked and authorised by the caller), stopped or not: stop it now, cancel its open
    orders and close its position at market; ``status_reason`` is ``killed by <by>``. Live: carried out
    by a worker (``live.kill_run``). Paper: at once, the position sold at the run's last price with the
    market's taker fee. ``actor`` is recorded in the audit log. Commits, then publishes the change."""
    if run.mode == RunMode.live:
        return _stop_live_run(session=session, run=run, kill=True, by=by, actor=actor)
    now = utcnow()
    cancelled: list[Order] = []
    for order in session.exec(select(Order).where(Order.run_id == run.id, Order.status == OrderStatus.open)):
        order.status, order.status_reason, order.updated_at = OrderStatus.cancelled, "run killed", now
        session.add(order)
        cancelled.append(order)
    close = _close_paper_position(session=session, run=run)
    run.status, run.stopped_at, run.killed_at = RunStatus.stopped, now, now
    run.status_reason = f"killed by {by}"
    session.add(run)
    event = RunEvent(run_id=run.id, kind="killed", level=EventLevel.warning,
                     message=f"run killed by {by}; cancelled {len(cancelled)} open order(s){close.text}")
    session.add(event)
    audit.record(session=session, actor=actor, action="run.killed", target=run,
                 detail={"mode": run.mode.value, "by": by, "cancelled_orders": len(cancelled)}, commit=False)
    session.commit()
    session.refresh(run)
    _publish_status(run, event, orders=[*cancelled, *close.orders], fills=close.fills, trades=close.trades)
    return run


def kill_all(*, session: Session, owner: User) -> int:
    """The trader's kill switch: stop every active run of ``owner`` (:attr:`RunStatus.ACTIVE`) and
    cancel their open orders (positions are kept; :func:`kill_run` closes one). Each run is stopped
    by :func:`stop_run_row` with ``by="owner's kill switch"`` and commits on its own; the switch is
    audited as ``run.kill_all``. Returns how many runs it stopped."""
    lock_for_write(session)
    runs = session.exec(select(Run).where(Run.owner_id == owner.id, Run.status.in_(RunStatus.ACTIVE))
                        .order_by(Run.created_at).with_for_update()).all()
    ids = [run.id for run in runs]
    for run_id in ids:
        lock_for_write(session)
        run = session.exec(select(Run).where(Run.id == run_id).with_for_update()).one()
        if run.status in RunStatus.ACTIVE:
            stop_run_row(session=session, run=run, actor=owner, by="owner's kill switch")
    audit.record(session=session, actor=owner, action="run.kill_all", detail={"stopped": len(ids)})
    return len(ids)


def _stop_live_run(*, session: Session, run: Run, kill: bool, by: str, actor: User | None) -> Run:
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
    live_runs.enqueue_kill(run.id, close=kill)
    return run


class PaperClose(NamedTuple):
    """What closing a paper position wrote: the text the kill's event adds, and the rows (empty when
    there was nothing to sell)."""

    text: str = ""
    orders: tuple[Order, ...] = ()
    fills: tuple[Fill, ...] = ()
    trades: tuple[Trade, ...] = ()


def _close_paper_position(*, session: Session, run: Run) -> PaperClose:
    """Sell a paper run's whole position at its last price through its paper account (the market's taker
    fee), writing the order, the fill and the closed trade."""
    if run.position_amount <= 0 or run.last_price is None:
        return PaperClose()
    info = session.get(ExchangeMarket, (run.exchange, run.symbol))
    # A kill always closes the position. A market that has left the catalog has no known fee or
    # precision: it is sold as held, with no fee, and the kill's event says so.
    rules = MarketRules(taker=info.taker if info else 0.0, amount_step=info.amount_step if info else None)
    unknown = "" if info is not None else " (market not in the catalog: no fee charged)"
    wallet = Wallet(cash=run.cash, position_amount=run.position_amount, realised_pnl=run.realised_pnl,
                    fees_paid=run.fees_paid)
    trade = session.exec(select(Trade).where(Trade.run_id == run.id, Trade.status == TradeStatus.open)).first()
    account = CandleAccount(rules, wallet=wallet,
                            position=RoundTrip.from_trade(trade, run.position_amount) if trade is not None else None)
    now_ms = int(utcnow().timestamp() * 1000)
    account.fill_now(PendingOrder("sell", OrderReason.kill, now_ms), run.last_price, now_ms)
    taken = account.take_events()
    if not taken.fills:
        return PaperClose()
    fill = taken.fills[0].fill
    seq = session.exec(select(func.count()).select_from(Order)
                       .where(Order.run_id == run.id, Order.reason == OrderReason.kill)).one()
    order = Order(run_id=run.id, client_order_id=client_order_id(run.id, now_ms, OrderReason.kill, int(seq) % 36),
                  symbol=run.symbol, side=OrderSide.sell, type=OrderType.market, amount=fill.amount,
                  status=OrderStatus.filled, reason=OrderReason.kill, signal_candle_ms=now_ms, filled=fill.amount,
                  average=fill.price, cost=fill.cost, fee=fill.fee, fee_currency=info.quote if info else None)
    session.add(order)
    session.flush()
    fill_row = Fill(order_id=order.id, run_id=run.id, side=OrderSide.sell, time_ms=now_ms, price=fill.price,
                    amount=fill.amount, cost=fill.cost, fee=fill.fee, fee_currency=info.quote if info else "")
    session.add(fill_row)
    trades = [closed.round_trip.close(time_ms=now_ms, reason=OrderReason.kill) for closed in taken.closed]
    session.add_all(trades)
    run.cash, run.position_amount, run.fees_paid, run.realised_pnl = (wallet.cash, wallet.position_amount,
                                                                      wallet.fees_paid, wallet.realised_pnl)
    run.position_entry_price = None
    return PaperClose(f"; sold {fill.amount:g} at {fill.price:g}{unknown}", (order,), (fill_row,), tuple(trades))


# ---------------------------------------------------------------------------------------------- reads and live updates

def _publish_status(run: Run, event: RunEvent, *, orders: Sequence[Order] = (), fills: Sequence[Fill] = (),
                    trades: Sequence[Trade] = ()) -> None:
    """Live updates of a committed status change: the orders it cancelled or filled, a kill's fill and
    closed round trip, the run event, the status."""
    box = Outbox()
    for order in orders:
        box.add(run.owner_id, OrderUpdate.of(run.id, order))
    for fill in fills:
        box.add(run.owner_id, FillUpdate.of(run.id, fill))
    for trade in trades:
        box.add(run.owner_id, TradeUpdate.of(run.id, trade))
    box.add(run.owner_id, LogUpdate.of(run.id, event))
    box.add(run.owner_id, StatusUpdate.of(run))
    box.publish()


def list_children(*, session: Session, owner: User, run_id: uuid.UUID, model: type[T], order_by: Any,
                  skip: int = 0, limit: int = 500, where: Any = None) -> list[T]:
    """Rows of ``model`` (orders, fills, trades, events, equity) of the owner's run, paginated;
    ``order_by`` is one ordering clause or a tuple of them (a sort key and its tie-breakers)."""
    run = get_run_or_404(session=session, owner=owner, run_id=run_id)
    statement = select(model).where(model.run_id == run.id)
    if where is not None:
        statement = statement.where(where)
    clauses = order_by if isinstance(order_by, tuple) else (order_by,)
    return list(session.exec(statement.order_by(*clauses).offset(skip).limit(limit)).all())


def equity_points(*, session: Session, owner: User, run_id: uuid.UUID, points: int) -> list[EquitySnapshot]:
    """About ``points`` evenly spaced snapshots of the owner's run (every ``ceil(n / points)``-th, plus
    the last), oldest first: one indexed count and one windowed query, whatever the run's length."""
    run = get_run_or_404(session=session, owner=owner, run_id=run_id)
    n = session.exec(select(func.count()).select_from(EquitySnapshot).where(EquitySnapshot.run_id == run.id)).one()
    if n <= points:
        return list(session.exec(select(EquitySnapshot).where(EquitySnapshot.run_id == run.id)
                                 .order_by(EquitySnapshot.candle_ms)).all())
    step = -(-n // points)
    numbered = (select(EquitySnapshot.id, func.row_number().over(order_by=EquitySnapshot.candle_ms).label("rn"))
                .where(EquitySnapshot.run_id == run.id).subquery())
    chosen = select(numbered.c.id).where(((numbered.c.rn - 1) % step == 0) | (numbered.c.rn == n))
    return list(session.exec(select(EquitySnapshot).where(EquitySnapshot.id.in_(chosen))
                             .order_by(EquitySnapshot.candle_ms)).all())


__all__ = [
    "EquitySnapshot", "Fill", "Order", "RunEvent", "Trade", "TradeStatus",
    "create_run", "equity_points", "get_run_or_404", "kill_all", "kill_run", "kill_run_row", "list_children",
    "list_runs", "move_run_version", "start_run", "stop_run", "stop_run_row", "validate_run", "validated_params",
]
