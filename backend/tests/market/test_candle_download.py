"""Downloading candles through ccxt from the exchange simulator (frozen clock) into SQLite and
PostgreSQL: pagination, no candle still forming, idempotence, retries and interruptions."""

from __future__ import annotations

import ccxt
import numpy as np
import pytest
from candle_helpers import BTC_1H, HOUR, MAR_1, T0, recorded
from sqlalchemy import func
from sqlmodel import select

from tradefleet.market import candle_download
from tradefleet.market.candle_download import download
from tradefleet.market.store import CandleDataError, find_gaps, load_candles
from tradefleet.models import StoredCandle

SERIES = {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1h"}
JAN_FEB = (MAR_1 - T0) // HOUR  # 1440 hourly candles in January and February 2024


def fetch(session, **overrides):
    kwargs = {"session": session, "exchange_id": "binance", "symbol": "BTC/USDT", "timeframe": "1h",
              "since_ms": T0, **overrides}
    return download(**kwargs)


def count(session) -> int:
    return session.exec(select(func.count()).select_from(StoredCandle)).one()


@pytest.fixture
def sim(exchange_sim, monkeypatch):
    """The simulator at 2024-03-01 00:00 UTC; retry pauses recorded instead of slept."""
    exchange_sim.clock.set(MAR_1)
    monkeypatch.setattr(candle_download, "_sleep", lambda s: exchange_sim.__dict__.setdefault("sleeps", []).append(s))
    exchange_sim.__dict__["sleeps"] = []
    return exchange_sim


def test_download_paginates_and_stores_only_closed_candles(session, sim):
    seen = []
    report = fetch(session, progress=lambda r: seen.append((r.pages, r.done, r.expected)))

    klines = sim.klines_requests()
    assert len(klines) == report.pages == 2  # 1000 + 440
    assert all("limit=1000" in k for k in klines)
    assert seen == [(1, 1000, JAN_FEB), (2, JAN_FEB, JAN_FEB)]
    assert (report.received, report.stored, report.duplicates, report.updated) == (JAN_FEB, JAN_FEB, 0, 0)
    assert (report.start_ms, report.end_ms, report.last_ms) == (T0, MAR_1 - HOUR, MAR_1 - HOUR)
    assert report.gaps == []

    frame = load_candles(session=session, **SERIES)
    assert len(frame) == JAN_FEB
    assert frame["time_ms"].max() + HOUR <= sim.clock.now_ms()  # every stored candle has closed
    expected = recorded(BTC_1H).iloc[:JAN_FEB]
    np.testing.assert_array_equal(frame["time_ms"].to_numpy(), expected["timestamp"].to_numpy())
    np.testing.assert_allclose(frame[["open", "high", "low", "close", "volume"]].to_numpy(),
                               expected[["open", "high", "low", "close", "volume"]].to_numpy(), rtol=0, atol=1e-8)


def test_redownload_is_idempotent_and_extends(session, sim):
    fetch(session)
    sim.requests.clear()
    again = fetch(session)
    assert (again.received, again.stored, again.duplicates) == (JAN_FEB, 0, JAN_FEB)
    assert count(session) == JAN_FEB

    sim.clock.set(MAR_1 + 5 * HOUR + 30 * 60_000)  # 05:30: the 05:00 candle is still forming
    more = fetch(session, since_ms=MAR_1 - 2 * HOUR)
    assert (more.received, more.stored, more.duplicates) == (7, 5, 2)
    assert more.last_ms == MAR_1 + 4 * HOUR
    assert count(session) == JAN_FEB + 5


def test_until_is_exclusive_and_since_rounds_up(session, sim):
    report = fetch(session, since_ms=T0 + 1, until_ms=T0 + 24 * HOUR)
    assert (report.start_ms, report.end_ms, report.stored, report.pages) == (T0 + HOUR, T0 + 23 * HOUR, 23, 1)
    assert load_candles(session=session, **SERIES)["time_ms"].tolist() == [T0 + i * HOUR for i in range(1, 24)]


def test_the_candle_still_forming_is_dropped_by_exchange_time(session, sim, monkeypatch):
    """A real exchange serves the forming candle: only candles closed at fetch_time are kept."""
    monkeypatch.setattr(ccxt.binance, "fetch_time", lambda self, params={}: MAR_1 - 3 * HOUR - 1)
    report = fetch(session)
    assert report.last_ms == MAR_1 - 5 * HOUR  # closes at MAR_1 - 4h <= exchange time
    assert load_candles(session=session, **SERIES)["time_ms"].max() == MAR_1 - 5 * HOUR


def test_nothing_to_fetch(session, sim):
    sim.clock.set(T0 + 30 * 60_000)  # the first candle has not closed yet
    report = fetch(session)
    assert (report.pages, report.stored, report.expected) == (0, 0, 0)
    assert sim.klines_requests() == []


def test_transient_errors_are_retried_with_backoff(session, sim, monkeypatch):
    real = ccxt.binance.fetch_ohlcv
    failures = [ccxt.NetworkError("connection reset"), ccxt.RateLimitExceeded("429 too many requests"),
                ccxt.RequestTimeout("timed out")]

    def flaky(self, *args, **kwargs):
        if failures:
            raise failures.pop(0)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ccxt.binance, "fetch_ohlcv", flaky)
    report = fetch(session)
    assert report.retries == 3 and report.stored == JAN_FEB
    assert sim.sleeps == [candle_download.BACKOFF_S, 4 * candle_download.BACKOFF_S, 4 * candle_download.BACKOFF_S]  # a rate limit waits double


def test_retries_are_bounded(session, sim, monkeypatch):
    calls = []

    def down(self, *args, **kwargs):
        calls.append(1)
        raise ccxt.ExchangeNotAvailable("maintenance")

    monkeypatch.setattr(ccxt.binance, "fetch_ohlcv", down)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        fetch(session)
    assert len(calls) == candle_download.MAX_RETRIES + 1
    assert max(sim.sleeps) <= candle_download.BACKOFF_MAX_S


def test_an_interrupted_download_keeps_its_pages(session, sim, monkeypatch):
    real = ccxt.binance.fetch_ohlcv
    pages = []

    def breaks_on_page_two(self, *args, **kwargs):
        pages.append(1)
        if len(pages) == 2:
            raise ccxt.ExchangeError("something the retry cannot fix")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ccxt.binance, "fetch_ohlcv", breaks_on_page_two)
    with pytest.raises(ccxt.ExchangeError):
        fetch(session)
    assert count(session) == 1000  # the first page was committed

    monkeypatch.setattr(ccxt.binance, "fetch_ohlcv", real)
    resumed = fetch(session, since_ms=T0 + 1000 * HOUR)
    assert (resumed.stored, resumed.pages) == (JAN_FEB - 1000, 1)
    assert find_gaps(session=session, **SERIES) == []


def test_bad_requests_fail_clearly(session, sim):
    with pytest.raises(ccxt.BadSymbol):
        fetch(session, symbol="NOPE/USDT")
    with pytest.raises(CandleDataError, match="unsupported timeframe"):
        fetch(session, timeframe="1M")
    assert count(session) == 0
