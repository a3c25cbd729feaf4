"""Closed candles of a series downloaded through ccxt's ``fetch_ohlcv`` into the ``candle`` table
(:mod:`tradefleet.market.store` writes and reads them).

Pages of the exchange's maximum size are fetched from the exchange object of
:func:`~tradefleet.market.exchange.make_exchange`, retried on transient errors, upserted and committed
one by one (an interrupted download keeps what it got); the candle still forming at the exchange's
time is never stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import ccxt
import numpy as np
from sqlmodel import Session

from tradefleet.market.csvio import timeframe_alignment
from tradefleet.market.exchange import make_exchange
from tradefleet.market.retries import with_retries
from tradefleet.market.store import Gap, find_gaps, series_names, upsert_candles

log = logging.getLogger(__name__)

__all__ = ["BACKOFF_MAX_S", "BACKOFF_S", "DownloadReport", "MAX_RETRIES", "download"]


@dataclass
class DownloadReport:
    """The result (and, passed to ``progress`` after each page, the running state) of :func:`download`.

    ``start_ms``/``end_ms``: the open times of the first and last candle asked for (``end_ms`` is the
    last closed candle at the exchange's time, or just before ``until_ms``); ``pages`` fetch_ohlcv
    calls that succeeded; ``received`` candles kept from them; ``stored``/``updated``/``duplicates`` as
    in :class:`UpsertCounts`; ``last_ms`` the newest candle received; ``retries`` transient errors
    retried; ``gaps`` the holes of the stored series inside ``[start_ms, end_ms]`` (filled in at the end).
    """

    exchange: str
    symbol: str
    timeframe: str
    start_ms: int
    end_ms: int
    pages: int = 0
    received: int = 0
    stored: int = 0
    updated: int = 0
    duplicates: int = 0
    last_ms: int | None = None
    retries: int = 0
    gaps: list[Gap] = field(default_factory=list)

    @property
    def expected(self) -> int:
        """Candles in ``[start_ms, end_ms]`` if the exchange has them all (0 when the range is empty)."""
        length_ms, _ = timeframe_alignment(self.timeframe)
        return max(0, (self.end_ms - self.start_ms) // length_ms + 1)

    @property
    def done(self) -> int:
        """Candles of ``[start_ms, end_ms]`` covered so far (by time), for a progress bar."""
        if self.last_ms is None:
            return 0
        length_ms, _ = timeframe_alignment(self.timeframe)
        return min(self.expected, (self.last_ms - self.start_ms) // length_ms + 1)


MAX_RETRIES = 5
"""Attempts after the first for one request failing with a transient ccxt error."""

BACKOFF_S = 1.0
"""First retry delay; doubled after each failure, at most :data:`BACKOFF_MAX_S`."""

BACKOFF_MAX_S = 30.0

_sleep = time.sleep  # tests replace it


def _rate_limit_pause(exc: BaseException, delay: float) -> float:
    # A rate limit wants a longer pause than a dropped connection.
    return delay * (2 if isinstance(exc, ccxt.RateLimitExceeded) else 1)


def _with_retries(call: Callable[[], object], *, what: str, report: DownloadReport | None = None):
    """``call()`` through :func:`tradefleet.market.retries.with_retries`: at most :data:`MAX_RETRIES`
    retries on ccxt's transient errors, from :data:`BACKOFF_S` doubled up to :data:`BACKOFF_MAX_S`
    (twice that after a rate limit), each counted in ``report.retries``."""
    def count(_: BaseException) -> None:
        if report is not None:
            report.retries += 1

    return with_retries(call, what=what, attempts=MAX_RETRIES + 1, delay_s=BACKOFF_S, max_delay_s=BACKOFF_MAX_S,
                        sleep=lambda s: _sleep(s), pause=_rate_limit_pause, on_retry=count)


def _page_limit(exchange: ccxt.Exchange) -> int:
    """Candles per ``fetch_ohlcv`` page: the exchange's maximum as ccxt describes it (binance: 1000),
    else 500."""
    try:
        limit = exchange.features["spot"]["fetchOHLCV"]["limit"]
    except (AttributeError, KeyError, TypeError):
        limit = None
    return int(limit) if limit else 500


def download(
    *,
    session: Session,
    exchange_id: str,
    symbol: str,
    timeframe: str,
    since_ms: int,
    until_ms: int | None = None,
    progress: Callable[[DownloadReport], None] | None = None,
) -> DownloadReport:
    """Download the closed candles of a series through ccxt's ``fetch_ohlcv`` and store them.

    Range: open times from ``since_ms`` (inclusive, rounded up to a candle open time) to before
    ``until_ms`` (exclusive; ``None``: up to now). "Now" is the exchange's clock (``fetch_time``), never
    the local one: only candles whose close (open + timeframe) is at or before it are kept, so the
    candle still forming is never stored.

    Pages of the exchange's maximum size (``since`` = the candle after the last one received, ``limit``)
    go through the exchange object of :func:`~tradefleet.market.exchange.make_exchange` (ccxt's
    ``enableRateLimit`` on). Transient errors are retried with backoff (:func:`_with_retries`). Stops
    when the range is done or a page brings no newer candle. Each page is upserted and committed as
    it arrives, so an interrupted download keeps what it got and running it again fills the rest.
    ``progress(report)`` is called after each page with the running report.

    Raises :class:`CandleDataError` for an unsupported timeframe or a bad symbol, ccxt's errors
    (``BadSymbol``, ``ExchangeError``, ``NetworkError`` once retries are spent) and
    :class:`~tradefleet.market.exchange.UnknownExchange`.
    """
    exchange_id, symbol, timeframe = series_names(exchange_id, symbol, timeframe)
    length_ms, offset_ms = timeframe_alignment(timeframe)
    exchange = make_exchange(exchange_id)
    _with_retries(exchange.load_markets, what=f"{exchange_id} load_markets")
    exchange.market(symbol)  # ccxt.BadSymbol now, even when there is nothing to fetch
    now_ms = int(_with_retries(exchange.fetch_time, what=f"{exchange_id} fetch_time"))
    start = -((offset_ms - since_ms) // length_ms) * length_ms + offset_ms  # ceil to an open time
    last_closed = (now_ms - length_ms - offset_ms) // length_ms * length_ms + offset_ms
    end = last_closed if until_ms is None else min(last_closed, until_ms - 1)
    end = (end - offset_ms) // length_ms * length_ms + offset_ms
    report = DownloadReport(exchange=exchange_id, symbol=symbol, timeframe=timeframe, start_ms=start, end_ms=end)
    limit = _page_limit(exchange)
    cursor = start
    while cursor <= end:
        rows = _with_retries(
            lambda: exchange.fetch_ohlcv(symbol, timeframe, since=cursor, limit=limit),
            what=f"{exchange_id} fetch_ohlcv {symbol} {timeframe} since {cursor}", report=report,
        )
        report.pages += 1
        page = np.asarray(rows, dtype="float64").reshape(-1, 6)
        times = page[:, 0].astype("int64")
        keep = (times >= cursor) & (times <= end) & ((times - offset_ms) % length_ms == 0)
        if not keep.any():
            break  # nothing newer: the exchange has no more (or nothing yet) in the range
        times, page = times[keep], page[keep]
        try:
            counts = upsert_candles(session=session, exchange=exchange_id, symbol=symbol,
                                    timeframe=timeframe, times=times, values=page[:, 1:])
            session.commit()
        except BaseException:
            session.rollback()  # this page only: the pages before it are committed
            raise
        report.received += len(times)
        report.stored += counts.stored
        report.updated += counts.updated
        report.duplicates += counts.duplicates
        report.last_ms = int(times.max())
        cursor = report.last_ms + length_ms
        if progress is not None:
            progress(report)
    report.gaps = find_gaps(session=session, exchange=exchange_id, symbol=symbol, timeframe=timeframe,
                            start_ms=start, end_ms=end)
    return report
