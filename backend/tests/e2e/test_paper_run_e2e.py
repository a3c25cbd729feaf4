"""End to end with real processes: the exchange simulator, uvicorn, a Celery worker and beat, on
PostgreSQL and Redis. A trader registers, logs in, runs a paper ``sma_cross`` on BTC/USDT 1m, and
the trades it gets are checked against the crossovers this test computes from the recorded CSV."""

from __future__ import annotations

import subprocess

import httpx
import pytest
from support.common import free_port, stack_env, wait_for
from support.reference import expected_trades, load_candles

from tradefleet.config import REPO_ROOT
from tradefleet.devstack import BIN, Stack

MINUTE = 60_000


def test_paper_sma_cross_end_to_end(e2e_database, redis_url, tmp_path):
    sim_port, api_port = free_port(), free_port()
    env = stack_env(database_url=e2e_database, redis_url=redis_url, sim_port=sim_port, SCHEDULE_INTERVAL_S="0.5")
    logs = tmp_path / "logs"
    with Stack(env=env, log_dir=logs) as stack:
        subprocess.run([str(BIN / "tradefleet"), "migrate"], env=stack.full_env(), cwd=REPO_ROOT, check=True,
                       capture_output=True)
        stack.simulator(port=sim_port, speed=120)
        stack.worker(concurrency=2)
        stack.beat(schedule_file=tmp_path / "beat-schedule")
        base = stack.api(port=api_port)
        api = httpx.Client(base_url=f"{base}/api/v1", timeout=10)

        email, password = "trader@example.com", "correct horse battery"
        assert api.post("/auth/register", json={"email": email, "password": password}).status_code == 201
        login = api.post("/auth/login", data={"username": email, "password": password})
        assert login.status_code == 200
        api.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        assert api.get("/users/me").json()["email"] == email

        body = {"strategy": "sma_cross", "params": {}, "exchange": "binance", "symbol": "BTC/USDT",
                "timeframe": "1m", "mode": "paper", "stake": 10_000}

        def create():  # the worker loads the market catalog when it starts: 503 until then
            reply = api.post("/runs", json=body)
            assert reply.status_code in (201, 503), reply.text
            return reply.json() if reply.status_code == 201 else None

        run = wait_for(create, 60, "the market catalog", stack)
        assert run["params"] == {"fast": 10, "slow": 30} and run["status"] == "created"
        run_id = run["id"]
        assert api.post(f"/runs/{run_id}/start").json()["status"] == "running"

        wait_for(lambda: api.get(f"/runs/{run_id}/trades").json(), 180, "a closed trade", stack)
        stopped = api.post(f"/runs/{run_id}/stop").json()
        assert stopped["status"] == "stopped"

        health = api.get("/health").json()
        assert health["status"] == "ok" and health["worker"]["alive"] >= 1

        # Another user sees nothing of it.
        other = httpx.Client(base_url=f"{base}/api/v1", timeout=10)
        other.post("/auth/register", json={"email": "other@example.com", "password": "another password 1"})
        token = other.post("/auth/login", data={"username": "other@example.com",
                                                "password": "another password 1"}).json()["access_token"]
        other.headers["Authorization"] = f"Bearer {token}"
        assert other.get(f"/runs/{run_id}").status_code == 404
        assert other.get(f"/runs/{run_id}/trades").status_code == 404

        run = api.get(f"/runs/{run_id}").json()
        trades = api.get(f"/runs/{run_id}/trades").json()
        equity = api.get(f"/runs/{run_id}/equity", params={"limit": 5000}).json()
        fills = api.get(f"/runs/{run_id}/fills").json()
        orders = api.get(f"/runs/{run_id}/orders").json()
        events = api.get(f"/runs/{run_id}/events").json()

    # Equity equals cash plus position value at every snapshot, one snapshot per candle.
    candles = load_candles("BTCUSDT", "1m")
    close_at = dict(zip(candles["time"].tolist(), candles["close"].tolist()))
    times = [s["candle_ms"] for s in equity]
    assert times == list(range(times[0], times[-1] + MINUTE, MINUTE))
    for s in equity:
        assert s["price"] == pytest.approx(close_at[s["candle_ms"]], rel=1e-12)
        assert s["equity"] == pytest.approx(s["cash"] + s["position_amount"] * s["price"], rel=1e-12)

    # The trades are exactly the crossovers this test computes itself, filled at the next open.
    expected = expected_trades(candles, first_ms=times[0], last_ms=times[-1], fast=10, slow=30,
                               stake=10_000.0, fee=0.001, step=0.00001)
    assert len(trades) >= 1
    assert [(t["entry_time_ms"], t["exit_time_ms"]) for t in trades] == [
        (e.entry_time_ms, e.exit_time_ms) for e in expected]
    for got, want in zip(trades, expected):
        assert got["entry_price"] == pytest.approx(want.entry_price, rel=1e-12)
        assert got["exit_price"] == pytest.approx(want.exit_price, rel=1e-12)
        assert got["amount"] == pytest.approx(want.amount, rel=1e-9)
        assert got["pnl"] == pytest.approx(want.pnl, rel=1e-9, abs=1e-9)

    # Fees: the market's taker rate (0.1 % on binance spot, from ccxt) on every fill's cost.
    assert fills and all(f["fee"] == pytest.approx(f["cost"] * 0.001, rel=1e-12) for f in fills)
    assert all(f["fee_currency"] == "USDT" for f in fills)
    assert run["fees_paid"] == pytest.approx(sum(f["fee"] for f in fills), rel=1e-9)
    assert run["realised_pnl"] == pytest.approx(sum(t["pnl"] for t in trades), rel=1e-9)
    assert run["equity"] == pytest.approx(run["cash"] + run["position_amount"] * run["last_price"], rel=1e-12)
    assert {o["status"] for o in orders} <= {"filled", "cancelled"}
    kinds = [e["kind"] for e in events]
    assert kinds[:2] == ["created", "started"] and kinds[-1] == "stopped" and "fill" in kinds
