"""Backtests through the API: validate and queue (the request), read and delete
(owner-scoped). Keyword-only, session first.

The request is validated exactly like a run (:func:`tradefleet.services.runs.validate_run`: strategy,
parameters, exchange, symbol, timeframe and stake against the strategy catalog and the market catalog),
plus the date range; nothing is written when it is rejected. The backtest pins the strategy version it
was requested with (``strategy_version_id``, default the latest approved) and the task runs that version. The row is committed, **then** the task is
enqueued with its id (a worker that picks it up at once must find the row).

Per-user caps, counted under the owner's quota lock (:func:`tradefleet.services.quotas.lock_owner`) so
that racing requests cannot pass them, each refused with nothing written: rows kept
(``BACKTEST_MAX_STORED_PER_USER``, 409), backtests queued or running (``BACKTEST_MAX_ACTIVE_PER_USER``,
429 with ``Retry-After``), and candles of unstored ranges to download per UTC day
(``BACKTEST_DOWNLOAD_CANDLES_PER_DAY``, 429 until midnight UTC, 422 when one request alone exceeds it).
Finished backtests older than ``BACKTEST_RETENTION_DAYS`` are deleted by ``backtest.expire``
(:func:`expire_backtests`).

The task's body, :func:`~tradefleet.services.backtest_execution.execute_backtest`, is in
:mod:`tradefleet.services.backtest_execution`.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import delete as sa_delete
from sqlalchemy import func
from sqlalchemy.orm import defer
from sqlmodel import Session, select

from tradefleet.config import get_settings
from tradefleet.db import session_scope
from tradefleet.errors import ConflictError, validation_error
from tradefleet.market.catalog import get_market_info
from tradefleet.market.csvio import CandleDataError, timeframe_alignment
from tradefleet.models import Backtest, BacktestCreate, BacktestDownload, BacktestStatus, StoredCandle, RunCreate, RunMode, StrategyVersion, User
from tradefleet.models._types import utcnow
from tradefleet.security.ratelimit import RateLimited
from tradefleet.services.ownership import get_owned_or_404
from tradefleet.services.quotas import lock_owner
from tradefleet.services.runs import ServiceUnavailable, validate_run
from tradefleet.times import datetime_ms

log = logging.getLogger(__name__)

MAX_CANDLES = 600_000
"""The most candles one backtest may span (a year of 1m candles is 525,600): bounds the memory of a
backtest and the size of a download."""

TASK_NAME = "backtest.run"

ACTIVE = (BacktestStatus.queued, BacktestStatus.running)
"""Statuses counted by ``BACKTEST_MAX_ACTIVE_PER_USER``."""
FINISHED = (BacktestStatus.done, BacktestStatus.failed)


# --- the request ---------------------------------------------------------------------------------


def validate_backtest(*, session: Session, backtest_in: BacktestCreate
                      ) -> tuple[dict[str, Any], float, StrategyVersion]:
    """Check a backtest request; returns ``(params with defaults, fee, the strategy version it pins)``.

    The strategy, parameters, exchange, symbol, timeframe and stake are checked exactly as for a run
    (422 naming the field; 503 while the exchange's market catalog is not loaded). Then: the timeframe
    must have a fixed length (``timeframe``), ``start`` must be before ``end`` (``end``), the range must
    not reach into the future (``start``/``end``: only closed candles can be tested) and span at most
    :data:`MAX_CANDLES` candles (``start``). ``fee`` defaults to the market's taker rate.
    """
    params, version = validate_run(session=session, run_in=RunCreate(
        strategy=backtest_in.strategy, params=backtest_in.params, exchange=backtest_in.exchange,
        symbol=backtest_in.symbol, timeframe=backtest_in.timeframe, mode=RunMode.paper, stake=backtest_in.stake,
        strategy_version_id=backtest_in.strategy_version_id))
    try:
        length_ms, _ = timeframe_alignment(backtest_in.timeframe)
    except CandleDataError:
        raise validation_error("timeframe", f"backtests need a fixed-length timeframe (1m, 1h, 1d...), "
                               f"not {backtest_in.timeframe!r}") from None
    start, end, now = backtest_in.start, backtest_in.end, utcnow()
    if start >= end:
        raise validation_error("end", f"must be after start ({start.isoformat()})")
    if start >= now:
        raise validation_error("start", "is in the future: a backtest needs closed candles")
    if end > now:
        raise validation_error("end", "is in the future: a backtest needs closed candles (use a time up to now)")
    candles = (datetime_ms(end) - datetime_ms(start)) // length_ms
    if candles > MAX_CANDLES:
        raise validation_error("start", f"the range spans {candles:,} candles of {backtest_in.timeframe}; "
                               f"at most {MAX_CANDLES:,} (shorten the range or use a longer timeframe)")
    info = get_market_info(session=session, exchange_id=backtest_in.exchange, symbol=backtest_in.symbol)
    assert info is not None  # validate_run checked it
    fee = backtest_in.fee if backtest_in.fee is not None else float(info.taker)
    return params, fee, version


def enqueue_backtest(backtest_id: uuid.UUID) -> None:
    """Send ``backtest.run`` with the id to the broker (tests replace this function)."""
    from tradefleet.jobs.app import send_task

    send_task(TASK_NAME, str(backtest_id))


def missing_candles(*, session: Session, backtest_in: BacktestCreate) -> int:
    """Candles of ``[start, end)`` of the request's market not in the candle store now: what running
    it would download (the strategy's few startup candles aside). Call after :func:`validate_backtest`."""
    length_ms, offset_ms = timeframe_alignment(backtest_in.timeframe)
    start_ms, end_ms = datetime_ms(backtest_in.start), datetime_ms(backtest_in.end)
    first = -((offset_ms - start_ms) // length_ms) * length_ms + offset_ms  # ceil to an open time
    expected = max(0, -(-(end_ms - first) // length_ms))
    stored = session.exec(select(func.count()).select_from(StoredCandle).where(
        StoredCandle.exchange == backtest_in.exchange, StoredCandle.symbol == backtest_in.symbol,
        StoredCandle.timeframe == backtest_in.timeframe, StoredCandle.time_ms >= first, StoredCandle.time_ms < end_ms)).one()
    return max(0, expected - int(stored))


def _seconds_to_utc_midnight(now: datetime) -> int:
    tomorrow = datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), datetime.min.time(), UTC)
    return max(1, int((tomorrow - now).total_seconds()) + 1)


def check_quotas(*, session: Session, owner: User, backtest_in: BacktestCreate) -> int:
    """Take the owner's quota lock (held until the caller's commit or rollback) and check the per-user
    caps for one more backtest; returns the candles it would download (to charge with
    :func:`charge_download`). Writes nothing.

    Raises ``ConflictError`` (409) at ``BACKTEST_MAX_STORED_PER_USER`` rows; ``RateLimited`` (429,
    ``Retry-After: BACKTEST_ACTIVE_RETRY_AFTER_S``) at ``BACKTEST_MAX_ACTIVE_PER_USER`` queued or running;
    ``RateLimited`` (429, ``Retry-After``: seconds to midnight UTC) when the download would pass today's
    ``BACKTEST_DOWNLOAD_CANDLES_PER_DAY``, or a 422 on ``start`` when it alone is larger than that cap.
    Each detail names its setting."""
    settings = get_settings()
    lock_owner(session, owner.id)
    counts = dict(session.exec(select(Backtest.status, func.count()).where(Backtest.owner_id == owner.id)
                               .group_by(Backtest.status)).all())
    stored = sum(int(n) for n in counts.values())
    if stored >= settings.BACKTEST_MAX_STORED_PER_USER:
        raise ConflictError(f"you already keep {stored} backtests, the most allowed "
                            f"(BACKTEST_MAX_STORED_PER_USER = {settings.BACKTEST_MAX_STORED_PER_USER}); "
                            f"delete some first")
    active = sum(int(counts.get(status, 0)) for status in ACTIVE)
    if active >= settings.BACKTEST_MAX_ACTIVE_PER_USER:
        raise RateLimited(settings.BACKTEST_ACTIVE_RETRY_AFTER_S,
                          f"you already have {active} backtests queued or running, the most allowed "
                          f"(BACKTEST_MAX_ACTIVE_PER_USER = {settings.BACKTEST_MAX_ACTIVE_PER_USER}); "
                          f"retry when one has finished")
    missing = missing_candles(session=session, backtest_in=backtest_in)
    if missing:
        cap = settings.BACKTEST_DOWNLOAD_CANDLES_PER_DAY
        if missing > cap:
            raise validation_error("start", f"the range needs {missing:,} candles that are not stored, more than "
                                   f"the {cap:,} a user may download per day (BACKTEST_DOWNLOAD_CANDLES_PER_DAY); "
                                   f"shorten the range")
        now = utcnow()
        used = session.exec(select(BacktestDownload.candles).where(
            BacktestDownload.owner_id == owner.id, BacktestDownload.day == now.astimezone(UTC).date())).first() or 0
        if used + missing > cap:
            raise RateLimited(_seconds_to_utc_midnight(now),
                              f"this backtest needs {missing:,} candles that are not stored; you have "
                              f"{max(0, cap - used):,} of {cap:,} left to download today "
                              f"(BACKTEST_DOWNLOAD_CANDLES_PER_DAY, counted per UTC day)")
    return missing


def charge_download(*, session: Session, owner: User, candles: int) -> None:
    """Add ``candles`` to the owner's download count of today (UTC), in the session's transaction.
    Call under the lock :func:`check_quotas` took."""
    if candles <= 0:
        return
    day: date = utcnow().astimezone(UTC).date()
    row = session.get(BacktestDownload, (owner.id, day))
    if row is None:
        session.add(BacktestDownload(owner_id=owner.id, day=day, candles=candles))
    else:
        row.candles += candles
        session.add(row)


def create_backtest(*, session: Session, owner: User, backtest_in: BacktestCreate) -> Backtest:
    """Validate, check the per-user caps, store (status ``queued``), commit, then enqueue ``backtest.run``.

    Raises the 422s and 503 of :func:`validate_backtest` and the 409/429/422 of :func:`check_quotas`
    (nothing written). When the broker cannot be reached the row is marked ``failed`` ("could not be
    queued") and a 503 is raised.
    """
    params, fee, version = validate_backtest(session=session, backtest_in=backtest_in)
    try:
        download = check_quotas(session=session, owner=owner, backtest_in=backtest_in)
    except Exception:
        session.rollback()  # release the quota lock now
        raise
    charge_download(session=session, owner=owner, candles=download)
    backtest = Backtest(owner_id=owner.id, strategy=backtest_in.strategy, params=params,
                        exchange=backtest_in.exchange, symbol=backtest_in.symbol, timeframe=backtest_in.timeframe,
                        start=backtest_in.start, end=backtest_in.end, stake=backtest_in.stake, fee=fee,
                        strategy_version_id=version.id)
    session.add(backtest)
    session.commit()
    session.refresh(backtest)
    # After the commit: a worker taking the task at once must find the row (Celery user guide,
    # "Database transactions").
    try:
        enqueue_backtest(backtest.id)
    except Exception as exc:  # noqa: BLE001 - any broker failure
        log.error("cannot enqueue backtest %s: %s", backtest.id, exc, exc_info=exc)
        backtest.status = BacktestStatus.failed
        backtest.error = "could not be queued: the task broker is unavailable"
        backtest.finished_at = utcnow()
        session.commit()
        raise ServiceUnavailable("the backtest could not be queued; try again shortly") from None
    return backtest


def expire_backtests(*, now: datetime | None = None) -> dict[str, int]:
    """Delete every finished (``done``/``failed``) backtest whose ``finished_at`` is more than
    ``BACKTEST_RETENTION_DAYS`` before ``now``, and the download counts of days before yesterday (UTC).
    Returns ``{"backtests": n, "download_days": m}`` (rows deleted). The body of ``backtest.expire``."""
    now = now or utcnow()
    cutoff = now - timedelta(days=get_settings().BACKTEST_RETENTION_DAYS)
    with session_scope() as session:
        deleted = session.exec(sa_delete(Backtest).where(Backtest.status.in_(FINISHED),
                                                         Backtest.finished_at < cutoff)).rowcount
        days = session.exec(sa_delete(BacktestDownload).where(
            BacktestDownload.day < now.astimezone(UTC).date() - timedelta(days=1))).rowcount
        session.commit()
    if deleted:
        log.info("deleted %d backtests finished before %s", deleted, cutoff.isoformat())
    return {"backtests": int(deleted or 0), "download_days": int(days or 0)}


# --- owner-scoped reads --------------------------------------------------------------------------


def get_backtest_or_404(*, session: Session, owner: User, backtest_id: uuid.UUID) -> Backtest:
    """The owner's backtest; 404 if it does not exist or belongs to someone else."""
    return get_owned_or_404(session=session, model=Backtest, row_id=backtest_id, owner_id=owner.id, what="backtest")


def list_backtests(*, session: Session, owner: User, skip: int = 0, limit: int = 100) -> tuple[list[Backtest], int]:
    """The owner's backtests, newest first, without loading trades and equity curves; and their count."""
    count = session.exec(select(func.count()).select_from(Backtest).where(Backtest.owner_id == owner.id)).one()
    rows = session.exec(select(Backtest).options(defer(Backtest.trades), defer(Backtest.equity))
                        .where(Backtest.owner_id == owner.id)
                        .order_by(Backtest.created_at.desc(), Backtest.id).offset(skip).limit(limit)).all()
    return list(rows), count


def delete_backtest(*, session: Session, owner: User, backtest_id: uuid.UUID) -> None:
    """Delete the owner's backtest (404 otherwise). A task still running it finds the row gone and
    stores nothing."""
    backtest = get_backtest_or_404(session=session, owner=owner, backtest_id=backtest_id)
    session.delete(backtest)
    session.commit()


__all__ = [
    "MAX_CANDLES", "charge_download", "check_quotas", "create_backtest", "delete_backtest",
    "enqueue_backtest", "expire_backtests", "get_backtest_or_404", "list_backtests",
    "missing_candles", "validate_backtest",
]
