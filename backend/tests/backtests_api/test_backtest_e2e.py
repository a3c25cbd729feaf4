"""End to end with real processes: the exchange simulator (for the market catalog), uvicorn and a
Celery worker on PostgreSQL and Redis. Candles are imported with ``tradefleet data import``; a trader
queues a backtest through the API, polls it to ``done``, and the result equals a direct
``run_backtest`` call on the same candles."""

from __future__ import annotations

import subprocess

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from support.common import free_port, stack_env, wait_for

from tradefleet.backtest import load_csv, run_backtest
from tradefleet.config import REPO_ROOT
from tradefleet.devstack import BIN, Stack
from tradefleet.sandbox.registry import StrategyRegistry

BTC_1H = REPO_ROOT / "data" / "ohlcv" / "binance_spot_BTCUSDT_1h_2024-01_2024-09.csv.gz"


def test_backtest_through_the_api_and_a_real_worker(e2e_database, redis_url, tmp_path):
    sim_port, api_port = free_port(), free_port()
    env = stack_env(database_url=e2e_database, redis_url=redis_url, sim_port=sim_port)
    with Stack(env=env, log_dir=tmp_path / "logs") as stack:
        for args in (["migrate"], ["data", "import", str(BTC_1H)]):
            subprocess.run([str(BIN / "tradefleet"), *args], env=stack.full_env(), cwd=REPO_ROOT, check=True,
                           capture_output=True)
        stack.simulator(port=sim_port, speed=1)  # serves the market catalog to the worker
        stack.workers(concurrency=2)  # the tick worker and the backtest worker
        base = stack.api(port=api_port)
        api = httpx.Client(base_url=f"{base}/api/v1", timeout=10)
        email, password = "backtester@example.com", "correct horse battery"
        assert api.post("/auth/register", json={"email": email, "password": password}).status_code == 201
        token = api.post("/auth/login", data={"username": email, "password": password}).json()["access_token"]
        api.headers["Authorization"] = f"Bearer {token}"

        body = {"strategy": "sma_cross", "params": {}, "exchange": "binance", "symbol": "BTC/USDT",
                "timeframe": "1h", "start": "2024-02-01T00:00:00Z", "end": "2024-04-01T00:00:00Z", "stake": 10_000}

        def create():  # 503 until the worker has loaded the market catalog
            reply = api.post("/backtests", json=body)
            assert reply.status_code in (202, 503), reply.text
            return reply.json() if reply.status_code == 202 else None

        queued = wait_for(create, 60, "the market catalog", stack)
        assert queued["status"] == "queued" and queued["params"] == {"fast": 10, "slow": 30}
        backtest_id = queued["id"]

        seen: list[tuple[str, int]] = []

        def finished():
            reply = api.get(f"/backtests/{backtest_id}").json()
            seen.append((reply["status"], reply["progress"]))
            return reply if reply["status"] in ("done", "failed") else None

        result = wait_for(finished, 120, "the backtest", stack)
        listed = api.get("/backtests").json()
    # The market's rules as the worker loaded them through ccxt.
    engine = create_engine(make_url(e2e_database).set(drivername="postgresql+psycopg"), poolclass=NullPool)
    with engine.connect() as conn:
        taker, amount_step, min_amount, min_cost = conn.execute(text(
            "SELECT taker, amount_step, min_amount, min_cost FROM exchange_market "
            "WHERE exchange = 'binance' AND symbol = 'BTC/USDT'")).one()
    engine.dispose()

    assert result["status"] == "done", result["error"]
    assert result["progress"] == 100 and result["error"] is None
    assert all(status in ("queued", "running", "done") for status, _ in seen)
    assert [p for _, p in seen] == sorted(p for _, p in seen)
    assert listed["count"] == 1 and listed["data"][0]["id"] == backtest_id and "trades" not in listed["data"][0]

    # The same backtest, run directly on the recorded file with those rules.
    registry = StrategyRegistry(REPO_ROOT / "strategies")
    registry.refresh()
    expected = run_backtest(registry.get("sma_cross"), load_csv(BTC_1H), params={}, stake=10_000, fee=taker,
                            amount_step=amount_step, min_amount=min_amount, min_cost=min_cost, timeframe="1h", start=body["start"],
                            end=body["end"], lookahead=True)
    assert result["fee"] == taker == pytest.approx(0.001) and amount_step == pytest.approx(0.00001)
    assert expected.metrics["trades"] >= 5
    assert result["metrics"] == pytest.approx(expected.metrics, rel=1e-12)
    assert len(result["trades"]) == len(expected.trades)
    assert [(t["entry_time_ms"], t["exit_time_ms"]) for t in result["trades"]] == [
        (t["entry_time_ms"], t["exit_time_ms"]) for t in expected.trades]
    assert [t["pnl"] for t in result["trades"]] == pytest.approx([t["pnl"] for t in expected.trades], rel=1e-12)
    assert result["candle_count"] == len(expected.equity) == 60 * 24
    assert result["lookahead"]["flagged"] is False and result["lookahead"]["samples"] == 20
    assert result["equity"][-1] == [int(expected.equity_time_ms[-1]), pytest.approx(float(expected.equity[-1]))]
