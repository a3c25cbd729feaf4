"""``GET /runs/{id}/candles`` and ``GET /runs/{id}/equity?points=``: the run pages' chart reads.

Candles come from the candle store and the engine's cached window (Redis), never from an exchange: no
simulator runs in these tests, and ``EXCHANGE_API_URLS`` points nowhere.
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from sqlmodel import Session

from tradefleet.market.candles import Market, _pack
from tradefleet.market.store import upsert_candles
from tradefleet.models import EquitySnapshot, Run, RunMode, RunStatus

MINUTE = 60_000
T0 = 1_704_067_200_000


def _run(session: Session, owner_id: uuid.UUID, *, last_candle_ms: int | None = None) -> Run:
    run = Run(owner_id=owner_id, strategy="sma_cross", params={"fast": 3, "slow": 5}, exchange="binance",
              symbol="BTC/USDT", timeframe="1m", mode=RunMode.paper, stake=1000, cash=1000,
              status=RunStatus.running, last_candle_ms=last_candle_ms)
    session.add(run)
    session.commit()
    session.refresh(run)
    return run


def _store(session: Session, times: np.ndarray, close: np.ndarray) -> None:
    values = np.column_stack([close - 1, close + 2, close - 2, close, np.full(len(close), 5.0)])
    upsert_candles(session=session, exchange="binance", symbol="BTC/USDT", timeframe="1m", times=times,
                   values=values)
    session.commit()


def test_candles_from_the_store_up_to_the_last_evaluated_candle(user_client, session, settings_env):
    settings_env(EXCHANGE_API_URLS='{"binance": "http://127.0.0.1:9"}')  # nothing listens: any call would fail
    times = T0 + MINUTE * np.arange(100, dtype="int64")
    _store(session, times, 100.0 + np.arange(100))
    run = _run(session, user_client.user.id, last_candle_ms=int(times[59]))

    reply = user_client.get(f"/api/v1/runs/{run.id}/candles", params={"limit": 10})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["symbol"] == "BTC/USDT" and body["timeframe"] == "1m" and body["until_ms"] == int(times[59])
    assert [c["time_ms"] for c in body["candles"]] == [int(t) for t in times[50:60]]
    first = body["candles"][0]
    assert first == {"time_ms": int(times[50]), "open": 149.0, "high": 152.0, "low": 148.0, "close": 150.0,
                     "volume": 5.0}

    # An explicit end, and the default limit covers what is stored.
    older = user_client.get(f"/api/v1/runs/{run.id}/candles", params={"until_ms": int(times[4])}).json()
    assert [c["time_ms"] for c in older["candles"]] == [int(t) for t in times[:5]]

    # A run that has not ticked yet shows the newest stored candles.
    fresh = _run(session, user_client.user.id)
    latest = user_client.get(f"/api/v1/runs/{fresh.id}/candles", params={"limit": 3}).json()
    assert [c["time_ms"] for c in latest["candles"]] == [int(t) for t in times[-3:]]


def test_candles_include_the_engine_window_from_the_shared_cache(user_client, session, redis_url):
    from tradefleet.cache import get_cache

    get_cache.cache_clear()
    times = T0 + MINUTE * np.arange(20, dtype="int64")
    _store(session, times[:10], 100.0 + np.arange(10))  # stored: the first ten only
    run = _run(session, user_client.user.id, last_candle_ms=int(times[-1]))
    # What the engine's get_candles() caches for the run's last tick: candles 5..19, 5 and 6 revised.
    window = np.column_stack([times[5:], *(np.full(15, 200.0) for _ in range(4)), np.full(15, 1.0)])
    key = f"ohlcv:{Market('binance', 'BTC/USDT', '1m').key}:{int(times[-1])}"
    get_cache().set(key, _pack(15, window), 60)
    try:
        body = user_client.get(f"/api/v1/runs/{run.id}/candles", params={"limit": 50}).json()
    finally:
        get_cache.cache_clear()
    assert [c["time_ms"] for c in body["candles"]] == [int(t) for t in times]
    assert [c["close"] for c in body["candles"][:5]] == [100.0, 101.0, 102.0, 103.0, 104.0]
    assert all(c["close"] == 200.0 for c in body["candles"][5:])  # the engine's window wins


def test_candles_are_owner_scoped_and_validated(user_client, session, make_user):
    other, _ = make_user()
    run = _run(session, other.id, last_candle_ms=T0)
    assert user_client.get(f"/api/v1/runs/{run.id}/candles").status_code == 404
    mine = _run(session, user_client.user.id, last_candle_ms=T0)
    for params, field in (({"limit": 0}, "query.limit"), ({"limit": 5001}, "query.limit"),
                          ({"until_ms": -1}, "query.until_ms"), ({"limit": "many"}, "query.limit")):
        reply = user_client.get(f"/api/v1/runs/{mine.id}/candles", params=params)
        assert reply.status_code == 422 and reply.json()["errors"][0]["field"] == field
    empty = user_client.get(f"/api/v1/runs/{mine.id}/candles").json()
    assert empty["candles"] == []
    assert user_client.get(f"/api/v1/runs/{uuid.uuid4()}/candles").status_code == 404


@pytest.mark.parametrize("n, points", [(1000, 50), (7, 50), (101, 10)])
def test_equity_points_downsample_the_whole_curve(user_client, session, n, points):
    run = _run(session, user_client.user.id)
    session.add_all([EquitySnapshot(run_id=run.id, candle_ms=T0 + i * MINUTE, cash=1000 - i, position_amount=0.0,
                                    price=100.0, equity=1000.0 + i) for i in range(n)])
    session.commit()
    body = user_client.get(f"/api/v1/runs/{run.id}/equity", params={"points": points}).json()
    times = [s["candle_ms"] for s in body]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert times[0] == T0 and times[-1] == T0 + (n - 1) * MINUTE
    assert len(body) <= points + 1
    if n > points:
        assert len(body) >= points // 2
        step = -(-n // points)
        assert all((t - T0) // MINUTE % step == 0 for t in times[:-1])
    else:
        assert len(body) == n
    assert user_client.get(f"/api/v1/runs/{run.id}/equity", params={"points": 1}).status_code == 422


def test_backtest_candles_cover_the_tested_range_owner_scoped(user_client, session, make_user):
    from datetime import UTC, datetime

    from tradefleet.models import Backtest, BacktestStatus

    times = T0 + MINUTE * np.arange(50, dtype="int64")
    _store(session, times, 100.0 + np.arange(50))
    at = lambda ms: datetime.fromtimestamp(ms / 1000, UTC)  # noqa: E731

    def backtest(owner_id, **fields):
        row = Backtest(owner_id=owner_id, strategy="sma_cross", params={}, exchange="binance", symbol="BTC/USDT",
                       timeframe="1m", start=at(int(times[5])), end=at(int(times[40])), stake=1000, fee=0.001,
                       **fields)
        session.add(row)
        session.commit()
        session.refresh(row)
        return row

    queued = backtest(user_client.user.id)  # the requested range: [start, end)
    body = user_client.get(f"/api/v1/backtests/{queued.id}/candles").json()
    assert [c["time_ms"] for c in body["candles"]] == [int(t) for t in times[5:40]] and body["truncated"] is False

    done = backtest(user_client.user.id, status=BacktestStatus.done, tested_start=at(int(times[10])),
                    tested_end=at(int(times[20])))
    body = user_client.get(f"/api/v1/backtests/{done.id}/candles", params={"limit": 4}).json()
    assert [c["time_ms"] for c in body["candles"]] == [int(t) for t in times[16:20]] and body["truncated"] is True
    assert body["candles"][-1]["close"] == 119.0

    other, _ = make_user()
    theirs = backtest(other.id)
    assert user_client.get(f"/api/v1/backtests/{theirs.id}/candles").status_code == 404
    bad = user_client.get(f"/api/v1/backtests/{done.id}/candles", params={"limit": 0})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.limit"
