"""Backtests through the API: validate and queue (the request), execute (the ``backtest.run`` task),
read and delete (owner-scoped). Keyword-only, session first.

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

:func:`execute_backtest` is the task's body. It re-reads the row, claims it (``queued`` →
``running``), loads the stored candles of the range and the strategy's startup period, downloads the
missing ones through ccxt first (:func:`tradefleet.market.candle_download.download`, bounded by the range), runs
:func:`tradefleet.backtest.run_backtest` with the look-ahead check, and stores the result with status
``done`` in one commit, or status ``failed`` with a message. Progress (percent and stage) is written
in short transactions of its own while it works.
"""

from __future__ import annotations

import inspect
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import ccxt
import numpy as np
from sqlalchemy import delete as sa_delete
from sqlalchemy import func, update
from sqlalchemy.orm import defer
from sqlmodel import Session, select

from tradefleet import events
from tradefleet.backtest import BacktestError, run_backtest
from tradefleet.config import get_settings
from tradefleet.db import lock_for_write, session_scope
from tradefleet.errors import ConflictError, NotFoundError, validation_error
from tradefleet.market.catalog import get_market_info
from tradefleet.market.csvio import CandleDataError, timeframe_alignment
from tradefleet.market.exchange import UnknownExchange
from tradefleet.market.candle_download import DownloadReport, download
from tradefleet.market.store import load_candles
from tradefleet.models import Backtest, BacktestCreate, BacktestDownload, BacktestStatus, Candle, RunCreate, RunMode, StrategyVersion, User
from tradefleet.models._types import utcnow
from tradefleet.models.backtest import EQUITY_POINTS
from tradefleet.security.ratelimit import RateLimited
from tradefleet.services.quotas import lock_owner
from tradefleet.services.runs import ServiceUnavailable, validate_run
from tradefleet.strategy.guard import StrategyError, call_guarded
from tradefleet.services.strategy_catalog import pinned_version_id
from tradefleet.strategy.params import ParamError
from tradefleet.strategy.versions import UnknownVersion, strategy_for_version
from tradefleet.times import datetime_ms, iso_ms, ms_datetime

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
    from tradefleet.worker.app import celery_app

    celery_app.send_task(TASK_NAME, args=[str(backtest_id)], retry=True,
                         retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5})


def missing_candles(*, session: Session, backtest_in: BacktestCreate) -> int:
    """Candles of ``[start, end)`` of the request's market not in the candle store now: what running
    it would download (the strategy's few startup candles aside). Call after :func:`validate_backtest`."""
    length_ms, offset_ms = timeframe_alignment(backtest_in.timeframe)
    start_ms, end_ms = datetime_ms(backtest_in.start), datetime_ms(backtest_in.end)
    first = -((offset_ms - start_ms) // length_ms) * length_ms + offset_ms  # ceil to an open time
    expected = max(0, -(-(end_ms - first) // length_ms))
    stored = session.exec(select(func.count()).select_from(Candle).where(
        Candle.exchange == backtest_in.exchange, Candle.symbol == backtest_in.symbol,
        Candle.timeframe == backtest_in.timeframe, Candle.time_ms >= first, Candle.time_ms < end_ms)).one()
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
    backtest = session.exec(select(Backtest).where(Backtest.id == backtest_id, Backtest.owner_id == owner.id)).first()
    if backtest is None:
        raise NotFoundError("backtest not found")
    return backtest


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


# --- the task's body -----------------------------------------------------------------------------


class BacktestFailed(Exception):
    """The backtest cannot run; the message is for the trader."""


class _Gone(Exception):
    """The row was deleted while the task worked."""


def downsample_equity(time_ms: np.ndarray, equity: np.ndarray, points: int = EQUITY_POINTS) -> list[list[Any]]:
    """``[[time_ms, equity], ...]`` with at most ``points`` points, in time order.

    Short curves are returned whole. Longer ones are cut into ``points // 2`` buckets of consecutive
    candles, each keeping its lowest and highest point (in time order), so peaks and troughs, and with
    them the drawdowns, survive; the first and the last point are always kept."""
    t = np.asarray(time_ms, dtype="int64")
    v = np.asarray(equity, dtype="float64")
    n = len(t)
    if n <= points:
        keep = np.arange(n)
    else:
        buckets = max(1, (points - 2) // 2)
        edges = np.linspace(0, n, buckets + 1).astype("int64")
        chosen: list[int] = [0]
        for lo, hi in zip(edges[:-1], edges[1:]):
            if hi <= lo:
                continue
            a = lo + int(np.argmin(v[lo:hi]))
            b = lo + int(np.argmax(v[lo:hi]))
            chosen.extend(sorted({a, b}))
        chosen.append(n - 1)
        keep = np.unique(np.asarray(chosen, dtype="int64"))
    return [[int(t[i]), float(v[i])] for i in keep]


class _Progress:
    """Writes ``progress`` (percent) and ``stage`` of a running backtest in short transactions of its
    own, at most every ``interval_s`` unless the stage changes."""

    def __init__(self, backtest_id: uuid.UUID, interval_s: float = 0.5) -> None:
        self.backtest_id = backtest_id
        self.interval_s = interval_s
        self.percent = -1
        self.stage: str | None = None
        self.written_at = 0.0
        self.owner_id: uuid.UUID | None = None

    def __call__(self, percent: float, stage: str | None = None) -> None:
        value = max(0, min(100, int(percent)))
        stage = stage or self.stage
        now = time.monotonic()
        if value == self.percent and stage == self.stage:
            return
        if stage == self.stage and now - self.written_at < self.interval_s:
            return
        with session_scope() as session:
            written = session.exec(update(Backtest)
                                   .where(Backtest.id == self.backtest_id, Backtest.status == BacktestStatus.running)
                                   .values(progress=value, stage=stage)).rowcount
            if written and self.owner_id is None:
                self.owner_id = session.exec(select(Backtest.owner_id).where(Backtest.id == self.backtest_id)).first()
            session.commit()
        self.percent, self.stage, self.written_at = value, stage, now
        if written and self.owner_id is not None:
            _publish_backtest(self.owner_id, self.backtest_id, status=BacktestStatus.running, progress=value,
                              stage=stage)

    def fraction(self, lo: float, hi: float, stage: str) -> Callable[[float], None]:
        """A callback taking a fraction 0..1 of a stage spanning ``lo``..``hi`` percent."""
        return lambda f: self(lo + (hi - lo) * min(1.0, max(0.0, float(f))), stage)


def _claim(backtest_id: uuid.UUID) -> bool:
    """``queued`` → ``running``, atomically: a second delivery of the same task claims nothing."""
    with session_scope() as session:
        claimed = session.exec(
            update(Backtest).where(Backtest.id == backtest_id, Backtest.status == BacktestStatus.queued)
            .values(status=BacktestStatus.running, progress=0, stage="starting", started_at=utcnow())
        ).rowcount
        owner_id = session.exec(select(Backtest.owner_id).where(Backtest.id == backtest_id)).first() if claimed else None
        session.commit()
    if owner_id is not None:
        _publish_backtest(owner_id, backtest_id, status=BacktestStatus.running, progress=0, stage="starting")
    return bool(claimed)


def _publish_backtest(owner_id: uuid.UUID, backtest_id: uuid.UUID, *, status: BacktestStatus, progress: int,
                      stage: str | None, error: str | None = None) -> None:
    """The live update of a committed backtest change (``backtest`` on the owner's channel)."""
    events.publish(owner_id, "backtest", {"backtest_id": str(backtest_id), "status": status.value,
                                          "progress": progress, "stage": stage, "error": error})


def _finish(backtest_id: uuid.UUID, status: BacktestStatus, **fields: Any) -> bool:
    """Write the final status with every result field in one commit; False if the row is gone or no
    longer running (deleted meanwhile)."""
    with session_scope() as session:
        lock_for_write(session)
        backtest = session.exec(select(Backtest).where(Backtest.id == backtest_id).with_for_update()).first()
        if backtest is None or backtest.status != BacktestStatus.running:
            session.rollback()
            return False
        for name, value in fields.items():
            setattr(backtest, name, value)
        backtest.status = status
        backtest.progress = 100 if status == BacktestStatus.done else backtest.progress
        backtest.stage = None
        backtest.finished_at = utcnow()
        session.commit()
        owner_id, progress, error = backtest.owner_id, backtest.progress, backtest.error
    _publish_backtest(owner_id, backtest_id, status=status, progress=progress, stage=None, error=error)
    return True


def _missing_range(times: np.ndarray, first_ms: int, end_ms: int, length_ms: int, offset_ms: int
                   ) -> tuple[int, int] | None:
    """``(since_ms, until_ms)`` spanning every candle open time in ``[first_ms, end_ms)`` that is not in
    ``times``; None when none is missing."""
    start = -((offset_ms - first_ms) // length_ms) * length_ms + offset_ms  # ceil to an open time
    expected = np.arange(start, end_ms, length_ms, dtype="int64")
    missing = expected[~np.isin(expected, times)]
    if not len(missing):
        return None
    return int(missing[0]), int(missing[-1]) + length_ms


def _compute(backtest_id: uuid.UUID, progress: _Progress) -> dict[str, Any]:
    """Load (and download) the candles, run the backtest; returns the result fields of the row.
    Raises :class:`BacktestFailed`, :class:`BacktestError`, :class:`StrategyError`, :class:`ParamError`
    with a message for the trader, :class:`_Gone` when the row was deleted."""
    settings = get_settings()
    with session_scope() as session:
        backtest = session.get(Backtest, backtest_id)
        if backtest is None:
            raise _Gone
        version_id = pinned_version_id(session, name=backtest.strategy, version_id=backtest.strategy_version_id)
        if version_id is None:
            raise BacktestFailed(f"strategy {backtest.strategy!r} is no longer available")
        if backtest.strategy_version_id is None:  # a row stored before versions: pinned on first use
            session.exec(update(Backtest).where(Backtest.id == backtest_id).values(strategy_version_id=version_id))
            session.commit()
        from tradefleet.sandbox import SandboxUnavailable, StrategyLoadError

        try:
            strategy_cls = strategy_for_version(version_id, session=session)
        except UnknownVersion:
            raise BacktestFailed(f"strategy {backtest.strategy!r} is no longer available") from None
        except (StrategyLoadError, SandboxUnavailable) as exc:
            raise BacktestFailed(f"strategy {backtest.strategy!r} cannot be run here: "
                                 f"{getattr(exc, 'message', None) or exc}") from None
        params = strategy_cls.validate_params(backtest.params)
        startup = int(call_guarded(lambda: strategy_cls(params).startup_candles,
                                   timeout_s=settings.STRATEGY_TIMEOUT_S,
                                   what=f"{strategy_cls.name}.startup_candles"))
        exchange, symbol, timeframe = backtest.exchange, backtest.symbol, backtest.timeframe
        start_ms, end_ms = datetime_ms(backtest.start), datetime_ms(backtest.end)
        length_ms, offset_ms = timeframe_alignment(timeframe)
        first_ms = start_ms - max(0, startup) * length_ms
        series = dict(session=session, exchange=exchange, symbol=symbol, timeframe=timeframe)

        progress(5, "loading candles")
        candles = load_candles(**series, start_ms=first_ms, end_ms=end_ms - 1)
        download_error = None
        missing = _missing_range(candles["time_ms"].to_numpy(), first_ms, end_ms, length_ms, offset_ms)
        if missing is not None:
            progress(10, "downloading candles")

            def on_page(report: DownloadReport) -> None:
                progress(10 + 25 * report.done / max(1, report.expected), "downloading candles")

            try:
                report = download(session=session, exchange_id=exchange, symbol=symbol, timeframe=timeframe,
                                  since_ms=missing[0], until_ms=missing[1], progress=on_page)
                log.info("backtest %s: downloaded %d candles of %s %s", backtest_id, report.received, symbol,
                         timeframe)
            except (ccxt.BaseError, CandleDataError, UnknownExchange, OSError) as exc:
                # Test with what is stored; say why there is nothing if that is the case.
                download_error = getattr(exc, "detail", None) or f"{type(exc).__name__}: {exc}"
                log.warning("backtest %s: download of %s %s failed: %s", backtest_id, symbol, timeframe,
                            download_error)
            progress(35, "loading candles")
            candles = load_candles(**series, start_ms=first_ms, end_ms=end_ms - 1)
        info = get_market_info(session=session, exchange_id=exchange, symbol=symbol)
        stake, fee = backtest.stake, backtest.fee

    times = candles["time_ms"].to_numpy()
    in_range = times[times >= start_ms]
    if not len(in_range):
        message = f"no candles for {symbol} {timeframe} between {iso_ms(start_ms)} and {iso_ms(end_ms)}"
        raise BacktestFailed(message + (f" (download failed: {download_error})" if download_error else ""))
    # Test the part of the range the exchange has candles for (an older start than its history, an
    # end beyond what it has closed): the stored result says which range that was.
    run_start = max(start_ms, int(in_range[0]))
    run_end = min(end_ms, int(times[-1]) + length_ms)

    kwargs: dict[str, Any] = dict(
        params=params, stake=stake, fee=fee, timeframe=timeframe, start=run_start, end=run_end,
        amount_step=info.amount_step if info else None, min_cost=info.min_cost if info else None,
        min_amount=info.min_amount if info else None,
        # A strategy with only on_candle has no signals to compare: the check does not apply.
        lookahead=strategy_cls.has_signals(), timeout_s=get_settings().STRATEGY_BACKTEST_TIMEOUT_S,
    )
    simulating = progress.fraction(40, 85, "simulating")
    if "progress" in inspect.signature(run_backtest).parameters:
        def on_step(fraction: float) -> None:
            if fraction >= 1.0:  # simulation done: metrics, then the look-ahead check
                progress(85, "metrics and look-ahead check")
            else:
                simulating(fraction)

        kwargs["progress"] = on_step
    progress(40, "simulating")
    result = run_backtest(strategy_cls, candles, **kwargs)
    progress(95, "storing the result")
    return dict(
        metrics=result.metrics,
        trades=result.trades,
        equity=downsample_equity(result.equity_time_ms, result.equity),
        lookahead=result.lookahead.to_dict() if result.lookahead is not None else None,
        candle_count=int(len(result.equity_time_ms)),
        tested_start=ms_datetime(result.start_ms),
        tested_end=ms_datetime(result.end_ms),
    )


def execute_backtest(backtest_id: uuid.UUID) -> BacktestStatus | None:
    """Run the queued backtest ``backtest_id`` (the body of the ``backtest.run`` task).

    Returns the final status, or None when there was nothing to do (the row is gone, or not ``queued``:
    another delivery took it). A strategy, parameter or data problem ends in ``failed`` with its
    message; anything unexpected in ``failed`` with "internal error" (the traceback goes to the log).
    Never leaves a half-written result: the result and ``done`` are one commit.
    """
    if not _claim(backtest_id):
        log.info("backtest %s is not queued (deleted or already taken): nothing to do", backtest_id)
        return None
    progress = _Progress(backtest_id)
    try:
        fields = _compute(backtest_id, progress)
    except _Gone:
        return None
    except (BacktestFailed, BacktestError, StrategyError, ParamError) as exc:
        log.info("backtest %s failed: %s", backtest_id, exc)
        return BacktestStatus.failed if _finish(backtest_id, BacktestStatus.failed, error=str(exc)) else None
    except Exception:  # noqa: BLE001 - the worker must record the failure and carry on
        log.exception("backtest %s: unexpected error", backtest_id)
        return BacktestStatus.failed if _finish(backtest_id, BacktestStatus.failed, error="internal error") else None
    return BacktestStatus.done if _finish(backtest_id, BacktestStatus.done, error=None, **fields) else None


__all__ = [
    "MAX_CANDLES", "charge_download", "check_quotas", "create_backtest", "delete_backtest", "downsample_equity",
    "enqueue_backtest", "execute_backtest", "expire_backtests", "get_backtest_or_404", "list_backtests",
    "missing_candles", "validate_backtest",
]
