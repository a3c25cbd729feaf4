"""Stopped runs are capped and expire (``services/retention``), so one user's history cannot grow without
bound, and nothing that still trades is ever deleted: a run with a position, an order not final or an
open trade stays, and so do every other user's runs. On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func
from sqlmodel import Session, select

from tradefleet.models import Order, OrderSide, OrderStatus, OrderType, Run, RunEvent, RunMode, RunStatus
from tradefleet.models._types import utcnow
from tradefleet.services.retention import prune_stopped_runs
from tradefleet.worker.tasks import prune_stopped_runs as prune_task


def _run(session: Session, owner_id: uuid.UUID, *, status: RunStatus, stopped_days_ago: float | None,
         position: float = 0.0) -> uuid.UUID:
    now = utcnow()
    run = Run(owner_id=owner_id, strategy="sma_cross", exchange="binance", symbol="BTC/USDT", timeframe="1h",
              mode=RunMode.paper, stake=1000, cash=1000, status=status, position_amount=position,
              created_at=now - timedelta(days=(stopped_days_ago or 0) + 1),
              stopped_at=None if stopped_days_ago is None else now - timedelta(days=stopped_days_ago))
    session.add(run)
    session.add(RunEvent(run_id=run.id, kind="created", message="created"))
    session.commit()
    return run.id


def _order(session: Session, run_id: uuid.UUID, status: OrderStatus) -> None:
    session.add(Order(run_id=run_id, client_order_id=f"t-{uuid.uuid4().hex[:20]}", symbol="BTC/USDT",
                      side=OrderSide.buy, type=OrderType.limit, amount=0.01, price=40000.0, status=status,
                      reason="enter_long", signal_candle_ms=1_704_240_000_000))
    session.commit()


def _ids(session: Session) -> set[uuid.UUID]:
    session.expire_all()
    return set(session.exec(select(Run.id)).all())


def test_old_stopped_runs_expire_and_settled_ones_only(session, make_user, settings_env):
    settings_env(RUN_RETENTION_DAYS=30)
    owner, _ = make_user()
    old = _run(session, owner.id, status=RunStatus.stopped, stopped_days_ago=40)
    recent = _run(session, owner.id, status=RunStatus.stopped, stopped_days_ago=5)
    holding = _run(session, owner.id, status=RunStatus.stopped, stopped_days_ago=40, position=0.5)
    pending = _run(session, owner.id, status=RunStatus.stopped, stopped_days_ago=40)
    _order(session, pending, OrderStatus.submitted)
    done = _run(session, owner.id, status=RunStatus.stopped, stopped_days_ago=40)
    _order(session, done, OrderStatus.filled)
    running = _run(session, owner.id, status=RunStatus.running, stopped_days_ago=None)

    assert prune_stopped_runs(session) == 2
    assert _ids(session) == {recent, holding, pending, running}
    # The deleted runs' events and orders went with them; the kept ones' stayed.
    assert session.exec(select(func.count()).select_from(RunEvent)
                        .where(RunEvent.run_id.in_([old, done]))).one() == 0
    assert session.exec(select(func.count()).select_from(Order).where(Order.run_id == pending)).one() == 1
    assert prune_stopped_runs(session) == 0  # idempotent


def test_stopped_runs_beyond_the_cap_are_deleted_oldest_first_per_user(session, make_user, settings_env):
    settings_env(RUN_MAX_STOPPED_PER_USER=3)
    owner, _ = make_user()
    other, _ = make_user()
    mine = [_run(session, owner.id, status=RunStatus.stopped, stopped_days_ago=d) for d in (1, 2, 3, 4, 5)]
    theirs = [_run(session, other.id, status=RunStatus.stopped, stopped_days_ago=d) for d in (1, 2, 3)]
    active = _run(session, owner.id, status=RunStatus.created, stopped_days_ago=None)

    assert prune_task.apply().get() == 2  # the beat task itself
    assert _ids(session) == {*mine[:3], *theirs, active}
