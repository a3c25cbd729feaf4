"""The flood of one user cannot take the API from another, against a real uvicorn on PostgreSQL.

One trader sends 120 parallel ``GET /backtests/{id}/candles?limit=20000`` (a backtest over 20,000 stored
candles) while another trader keeps calling ``GET /runs`` and ``GET /users/me``. With the default limits
(settings' defaults, not the suite's raised ones) the attacker gets only 200, 429 or 503, never a 500;
every request of the other user answers 200. Then the same flood with in-flight slots effectively off
and a pool of 2 connections: the attacker still never gets a 500 (503 with ``Retry-After`` instead).
The other user's latency percentiles are printed (the target, p99 under 1 s, is measured by
``bench/api_flood.py``; timings are not asserted here).
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, insert
from sqlmodel import Session, select

from tradefleet.config import Settings
from tradefleet.devstack import Stack
from tradefleet.models import Backtest, BacktestStatus, StoredCandle
from support.common import TEST_JWT_SECRET, TEST_TOTP_KEY, TEST_VAULT_KEYS, free_port

MINUTE_MS = 60_000
CANDLES = 20_000
START = datetime(2024, 1, 1, tzinfo=UTC)
FLOOD = 120

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)

LIMIT_SETTINGS = ("RATE_LIMIT_USER", "RATE_LIMIT_ADMIN", "RATE_LIMIT_USER_HEAVY", "USER_MAX_IN_FLIGHT",
                  "USER_MAX_IN_FLIGHT_HEAVY", "DB_POOL_SIZE", "DB_MAX_OVERFLOW", "DB_POOL_TIMEOUT_S")


def _defaults() -> dict[str, str]:
    return {name: str(Settings.model_fields[name].default) for name in LIMIT_SETTINGS}


def _seed(session: Session, owner_id) -> Backtest:
    start_ms = int(START.timestamp() * 1000)
    rows = [{"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1m", "time_ms": start_ms + i * MINUTE_MS,
             "open": 100.0 + i % 7, "high": 110.0, "low": 90.0, "close": 101.0, "volume": 5.0}
            for i in range(CANDLES)]
    session.execute(insert(StoredCandle), rows)
    end = START + timedelta(minutes=CANDLES)
    backtest = Backtest(owner_id=owner_id, strategy="sma_cross", params={}, exchange="binance", symbol="BTC/USDT",
                        timeframe="1m", start=START, end=end, stake=1000.0, fee=0.001, status=BacktestStatus.done,
                        progress=100, tested_start=START, tested_end=end, candle_count=CANDLES)
    session.add(backtest)
    session.commit()
    return backtest


def _bystander(base: str, headers: dict, done: threading.Event, statuses: list[int], latencies: list[float]) -> None:
    """The other user, in its own thread and connection (not on the flood's event loop, whose own
    congestion would otherwise show up as the server's latency)."""
    with httpx.Client(base_url=f"{base}/api/v1", timeout=120, headers=headers) as other:
        for path in ("/runs", "/users/me"):  # warm-up, not measured
            other.get(path)
        while not done.is_set() or len(latencies) < 40:
            for path in ("/runs", "/users/me"):
                began = time.perf_counter()
                reply = other.get(path)
                latencies.append(time.perf_counter() - began)
                statuses.append(reply.status_code)
            time.sleep(0.01)


async def _attack(base: str, attacker: dict, backtest_id) -> list[int]:
    url = f"{base}/api/v1/backtests/{backtest_id}/candles"
    limits = httpx.Limits(max_connections=FLOOD + 10, max_keepalive_connections=FLOOD + 10)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        async def one() -> int:
            return (await client.get(url, params={"limit": 20_000}, headers=attacker)).status_code

        return list(await asyncio.gather(*(one() for _ in range(FLOOD))))


def _flood(base: str, attacker: dict, bystander: dict, backtest_id) -> tuple[list[int], list[int], list[float]]:
    done = threading.Event()
    other_statuses: list[int] = []
    latencies: list[float] = []
    watcher = threading.Thread(target=_bystander, args=(base, bystander, done, other_statuses, latencies))
    watcher.start()
    time.sleep(0.2)
    try:
        attacker_statuses = asyncio.run(_attack(base, attacker, backtest_id))
    finally:
        done.set()
        watcher.join()
    return attacker_statuses, other_statuses, latencies


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def _run_flood(tmp_path, db_url, redis_url, settings, attacker, bystander, backtest_id, name, figures):
    env = {"ENVIRONMENT": "test", "DATABASE_URL": db_url, "REDIS_URL": redis_url, "JWT_SECRET_KEY": TEST_JWT_SECRET,
           "TOTP_ENCRYPTION_KEY": TEST_TOTP_KEY, "VAULT_PUBLIC_KEYS": TEST_VAULT_KEYS.public,
           "RATE_LIMIT_ENABLED": "true", **settings}
    with Stack(env=env, log_dir=tmp_path / name) as stack:
        base = stack.api(port=free_port())
        statuses, other, latencies = _flood(base, attacker, bystander, backtest_id)
    counts = {code: statuses.count(code) for code in sorted(set(statuses))}
    figure = (f"attacker {counts}; other user {len(latencies)} requests, p50 {_p(latencies, 50) * 1000:.0f} ms, "
              f"p99 {_p(latencies, 99) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")
    figures.add("security checks", f"flood of {FLOOD} heavy requests ({name})", figure)
    print(figure)
    return statuses, other


def test_one_users_flood_leaves_the_other_user_served(db, redis_url, make_user, auth_headers, tmp_path, db_url,
                                                      figures):
    attacker_user, _ = make_user()
    other_user, _ = make_user()
    with Session(db, expire_on_commit=False) as session:
        backtest = _seed(session, attacker_user.id)
        before = session.exec(select(func.count()).select_from(StoredCandle)).one()
    attacker, bystander = auth_headers(attacker_user), auth_headers(other_user)

    statuses, other = _run_flood(tmp_path, db_url, redis_url, _defaults(), attacker, bystander, backtest.id,
                                 "default limits", figures)
    assert set(statuses) <= {200, 429, 503}, statuses
    assert 200 in statuses and 429 in statuses  # served within its slots, refused beyond them
    assert other and set(other) == {200}, other

    # Slots out of the way and a pool of 2: the pool itself is what refuses, with a 503, never a 500.
    crowded = {**_defaults(), "USER_MAX_IN_FLIGHT": "1000", "USER_MAX_IN_FLIGHT_HEAVY": "1000",
               "RATE_LIMIT_USER_HEAVY": "100000/minute", "RATE_LIMIT_USER": "100000/minute",
               "DB_POOL_SIZE": "2", "DB_MAX_OVERFLOW": "0", "DB_POOL_TIMEOUT_S": "0.5"}
    statuses, other = _run_flood(tmp_path, db_url, redis_url, crowded, attacker, bystander, backtest.id,
                                 "no slots, pool of 2", figures)
    assert set(statuses) <= {200, 503}, statuses
    assert set(other) <= {200, 503}, other

    with Session(db) as session:  # reads only: nothing changed
        assert session.exec(select(func.count()).select_from(StoredCandle)).one() == before
        assert session.get(Backtest, backtest.id).status == BacktestStatus.done
