"""The body of the ``backtest.run`` task: one queued backtest, run and stored.

:func:`execute_backtest` re-reads the row, claims it (``queued`` →
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
from typing import Any

import numpy as np
from sqlalchemy import update
from sqlmodel import select

from tradefleet.backtest import BacktestError, run_backtest
from tradefleet.config import get_settings
from tradefleet.db import lock_for_write, session_scope
from tradefleet.events.outbox import publish
from tradefleet.events.updates import BacktestUpdate
from tradefleet.market.catalog import get_market_info
from tradefleet.market.csvio import CandleDataError, timeframe_alignment
from tradefleet.market.exchange import ExchangeError, UnknownExchange
from tradefleet.market.candle_download import DownloadReport, download
from tradefleet.market.store import load_candles
from tradefleet.models import Backtest, BacktestStatus
from tradefleet.models._types import utcnow
from tradefleet.models.backtest import EQUITY_POINTS
from tradefleet.strategy.guard import StrategyError, call_guarded
from tradefleet.services.strategy_catalog import pinned_version_id
from tradefleet.strategy.params import ParamError
from tradefleet.sandbox.versions import UnknownVersion, strategy_for_version
from tradefleet.times import datetime_ms, iso_ms, ms_datetime

log = logging.getLogger(__name__)


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
    publish(owner_id, BacktestUpdate(backtest_id=backtest_id, status=status, progress=progress, stage=stage,
                                     error=error))


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
        except UnknownVersion as exc:
            raise BacktestFailed(f"strategy {backtest.strategy!r} is no longer available") from exc
        except (StrategyLoadError, SandboxUnavailable) as exc:
            raise BacktestFailed(f"strategy {backtest.strategy!r} cannot be run here: "
                                 f"{getattr(exc, 'message', None) or exc}") from exc
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
            except (ExchangeError, CandleDataError, UnknownExchange, OSError) as exc:
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


__all__ = ["BacktestFailed", "downsample_equity", "execute_backtest"]
