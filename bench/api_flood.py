#!/usr/bin/env python3
"""API flood benchmark: one user's parallel heavy requests against another user's latency.

    .venv/bin/python bench/api_flood.py                    # 120 parallel requests, default limits
    .venv/bin/python bench/api_flood.py --flood 240 --rounds 3 --json

What it does: creates a fresh PostgreSQL database (dropped at the end unless ``--keep``), migrates it,
flushes a dedicated Redis database, creates two traders, ``--candles`` stored 1m candles and a finished
backtest over them owned by the attacker; starts the real API (uvicorn through
``tradefleet.devstack.Stack``, the settings' default pool and per-user limits unless given in the
environment). Then, ``--rounds`` times: the attacker sends ``--flood`` parallel
``GET /backtests/{id}/candles?limit=20000`` while the other user, in its own thread and connection,
keeps calling ``GET /runs`` and ``GET /users/me``. It prints the attacker's status codes and the other
user's latency p50 / p99 / max, and PASS/FAIL against the targets: the attacker never gets a 500, every
request of the other user answers 200, and its p99 is under ``--target-p99`` seconds (1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "backend"))

import httpx  # noqa: E402
import redis  # noqa: E402
from sqlalchemy import create_engine, insert, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

MINUTE_MS = 60_000
START = datetime(2024, 1, 1, tzinfo=UTC)


def log(message: str) -> None:
    print(f"[api_flood] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres",
                   help="server to create the scratch database on")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/12", help="Redis database (flushed)")
    p.add_argument("--flood", type=int, default=120, help="parallel heavy requests of the attacker")
    p.add_argument("--rounds", type=int, default=3, help="floods, one after another")
    p.add_argument("--candles", type=int, default=20_000, help="stored candles of the backtest")
    p.add_argument("--target-p99", type=float, default=1.0, help="seconds, the other user's p99 target")
    p.add_argument("--keep", action="store_true", help="keep the database")
    p.add_argument("--json", action="store_true", help="one JSON object of the figures on stdout")
    return p.parse_args(argv)


def seed(n_candles: int) -> tuple[dict, dict, str]:
    """Two traders (their bearer headers) and a done backtest of the first over ``n_candles``."""
    from sqlmodel import Session

    from tradefleet.db import get_engine
    from tradefleet.models import Backtest, BacktestStatus, StoredCandle, UserCreate
    from tradefleet.security.tokens import create_access_token
    from tradefleet.services.users import create_user

    start_ms = int(START.timestamp() * 1000)
    with Session(get_engine(), expire_on_commit=False) as session:
        users = [create_user(session=session, user_in=UserCreate(email=f"flood-{i}@example.com",
                                                                  password=secrets.token_urlsafe(16)))
                 for i in range(2)]
        session.execute(insert(StoredCandle), [
            {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1m", "time_ms": start_ms + i * MINUTE_MS,
             "open": 100.0 + i % 7, "high": 110.0, "low": 90.0, "close": 101.0, "volume": 5.0}
            for i in range(n_candles)])
        end = START + timedelta(minutes=n_candles)
        backtest = Backtest(owner_id=users[0].id, strategy="sma_cross", params={}, exchange="binance",
                            symbol="BTC/USDT", timeframe="1m", start=START, end=end, stake=1000.0, fee=0.001,
                            status=BacktestStatus.done, progress=100, tested_start=START, tested_end=end,
                            candle_count=n_candles)
        session.add(backtest)
        session.commit()
        headers = [{"Authorization": f"Bearer {create_access_token(u.id, token_version=u.token_version)}"}
                   for u in users]
    return headers[0], headers[1], str(backtest.id)


def bystander(base: str, headers: dict, done: threading.Event, statuses: list[int], latencies: list[float]) -> None:
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


async def attack(base: str, headers: dict, backtest_id: str, n: int) -> list[int]:
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    url = f"{base}/api/v1/backtests/{backtest_id}/candles"
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        async def one() -> int:
            return (await client.get(url, params={"limit": 20_000}, headers=headers)).status_code

        return list(await asyncio.gather(*(one() for _ in range(n))))


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from cryptography.fernet import Fernet

    from tradefleet.security.vault import generate_key_pair

    server = make_url(args.postgres).set(drivername="postgresql+psycopg")
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    db_name = f"tradefleet_flood_{secrets.token_hex(4)}"
    db_url = server.set(database=db_name).render_as_string(hide_password=False)
    redis.Redis.from_url(args.redis).flushdb()
    env = {"ENVIRONMENT": "test", "DATABASE_URL": db_url, "REDIS_URL": args.redis,
           "JWT_SECRET_KEY": "bench-" + secrets.token_hex(16), "TOTP_ENCRYPTION_KEY": Fernet.generate_key().decode(),
           "VAULT_PUBLIC_KEYS": generate_key_pair().public, "PYTHONUNBUFFERED": "1"}
    log_dir = REPO / "var" / "bench" / f"api_flood-{datetime.now():%Y%m%d-%H%M%S}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{db_name}"'))
    result: dict = {}
    try:
        os.environ.update(env)
        from tradefleet.config import get_settings
        from tradefleet.db import reset_engine
        from tradefleet.devstack import Stack
        from tradefleet.migrations import upgrade

        get_settings.cache_clear()
        reset_engine()
        upgrade("head")
        attacker, other, backtest_id = seed(args.candles)
        settings = get_settings()
        result["settings"] = {name: getattr(settings, name) for name in (
            "DB_POOL_SIZE", "DB_MAX_OVERFLOW", "DB_POOL_TIMEOUT_S", "USER_MAX_IN_FLIGHT", "USER_MAX_IN_FLIGHT_HEAVY",
            "RATE_LIMIT_USER", "RATE_LIMIT_USER_HEAVY")}
        log(f"database {db_name}, {args.candles} candles; logs in {log_dir}")
        with Stack(env=env, log_dir=log_dir) as stack:
            base = stack.api(port=free_port())
            attacker_codes: dict[int, int] = {}
            other_codes: dict[int, int] = {}
            latencies: list[float] = []
            for round_ in range(args.rounds):
                redis.Redis.from_url(args.redis).flushdb()  # each round starts with fresh rate-limit counters
                done, statuses, lat = threading.Event(), [], []
                watcher = threading.Thread(target=bystander, args=(base, other, done, statuses, lat))
                watcher.start()
                time.sleep(0.2)
                try:
                    codes = asyncio.run(attack(base, attacker, backtest_id, args.flood))
                finally:
                    done.set()
                    watcher.join()
                for code in codes:
                    attacker_codes[code] = attacker_codes.get(code, 0) + 1
                for code in statuses:
                    other_codes[code] = other_codes.get(code, 0) + 1
                latencies += lat
                log(f"round {round_ + 1}: attacker {sorted(set(codes))}, other p99 {percentile(lat, 99) * 1000:.0f} ms")
        result.update(
            flood=args.flood, rounds=args.rounds, attacker_statuses=attacker_codes, other_statuses=other_codes,
            other_requests=len(latencies), other_p50_ms=round(percentile(latencies, 50) * 1000, 1),
            other_p99_ms=round(percentile(latencies, 99) * 1000, 1), other_max_ms=round(max(latencies) * 1000, 1))
        checks = {
            "attacker never 500": all(code < 500 or code == 503 for code in attacker_codes),
            "other user always 200": set(other_codes) == {200},
            f"other user p99 < {args.target_p99:g} s": result["other_p99_ms"] < args.target_p99 * 1000,
        }
        result["checks"] = checks
    finally:
        if not args.keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"settings: {result['settings']}")
        print(f"{args.rounds} x {args.flood} parallel GET /backtests/{{id}}/candles?limit=20000 by one user")
        print(f"attacker statuses: {result['attacker_statuses']}")
        print(f"other user: {result['other_requests']} requests, statuses {result['other_statuses']}, "
              f"p50 {result['other_p50_ms']} ms, p99 {result['other_p99_ms']} ms, max {result['other_max_ms']} ms")
        for name, ok in checks.items():
            print(f"{'PASS' if ok else 'FAIL'}: {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
