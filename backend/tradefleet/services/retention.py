"""Retention of stopped runs: what keeps one user's history from growing without bound.

A stopped run is deleted (its events, equity snapshots, orders, fills and trades go with it, by the
``ON DELETE CASCADE`` of their foreign keys; audit entries, which name the run only by id, stay) when

- it was stopped more than ``RUN_RETENTION_DAYS`` ago, or
- its owner has more than ``RUN_MAX_STOPPED_PER_USER`` stopped runs and it is not among the newest
  that many (ordered by ``stopped_at``, then ``created_at``),

and only if it is *settled*: status ``stopped``, no position (``position_amount`` 0), no order that is
not final (``intent``, ``submitted``, ``open``, ``unknown``) and no open trade. Those conditions are part
of the ``DELETE`` itself, so a run started again or given an order meanwhile is never deleted.

Run by beat (``runs.prune_stopped``, hourly); idempotent.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, delete, exists, func, select
from sqlmodel import Session

from tradefleet.config import get_settings
from tradefleet.models import Order, Run, RunStatus, Trade
from tradefleet.models._types import utcnow
from tradefleet.models.order import LIVE_PENDING, TradeStatus

BATCH = 500
"""Runs deleted per statement (and per commit), so no transaction holds many rows for long."""


def _settled():  # noqa: ANN202 - a SQL expression
    return and_(
        Run.status == RunStatus.stopped,
        Run.position_amount == 0,
        ~exists().where(Order.run_id == Run.id, Order.status.in_(LIVE_PENDING)),
        ~exists().where(Trade.run_id == Run.id, Trade.status == TradeStatus.open),
    )


def _expired_ids(session: Session, cutoff: datetime) -> list:
    stopped = func.coalesce(Run.stopped_at, Run.created_at)
    return list(session.execute(select(Run.id).where(_settled(), stopped < cutoff).limit(BATCH)).scalars())


def _over_cap_ids(session: Session, keep: int) -> list:
    rank = func.row_number().over(partition_by=Run.owner_id,
                                  order_by=(func.coalesce(Run.stopped_at, Run.created_at).desc(),
                                            Run.created_at.desc(), Run.id.desc())).label("rank")
    ranked = select(Run.id.label("id"), rank).where(Run.status == RunStatus.stopped).subquery()
    return list(session.execute(
        select(Run.id).join(ranked, ranked.c.id == Run.id).where(ranked.c.rank > keep, _settled()).limit(BATCH)
    ).scalars())


def prune_stopped_runs(session: Session, *, now: datetime | None = None) -> int:
    """Delete the stopped runs the module docstring describes, committing every :data:`BATCH`;
    returns how many were deleted."""
    settings = get_settings()
    cutoff = (now or utcnow()) - timedelta(days=settings.RUN_RETENTION_DAYS)
    deleted = 0
    for pick in (lambda: _expired_ids(session, cutoff),
                 lambda: _over_cap_ids(session, settings.RUN_MAX_STOPPED_PER_USER)):
        while True:
            ids = pick()
            if not ids:
                break
            # The conditions again, in the DELETE: a run started or given an order since is kept.
            result = session.execute(delete(Run).where(Run.id.in_(ids), _settled())
                                     .execution_options(synchronize_session=False))
            session.commit()
            deleted += result.rowcount or 0
            if (result.rowcount or 0) == 0:
                break
    return deleted


__all__ = ["BATCH", "prune_stopped_runs"]
