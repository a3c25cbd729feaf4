"""End to end with real processes (simulator, uvicorn, the tick worker, the backtest worker, beat;
PostgreSQL and Redis): one trader floods the API with 100 backtests while another trader's paper runs
tick on 1m candles. The per-user cap on queued and running backtests is raised to 20 so that many
really queue (the rest are refused with a 429 naming the cap); the backtests run on the backtest
worker. Asserted: every candle of the other trader's runs in the observed window is evaluated, none
is skipped, and the p99 tick lag (wall time from a candle's close on the simulator's clock to its
equity snapshot) stays under 5 s. The lag figures are printed."""

from __future__ import annotations

import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
from support.common import free_port, stack_env, wait_for

from tradefleet.config import REPO_ROOT
from tradefleet.devstack import BIN, Stack

MINUTE = 60_000
SPEED = 60.0  # one 1m candle per wall second
OBSERVE_S = 60.0
ACTIVE_CAP = 20
FLOOD = 100
BTC_5M = REPO_ROOT / "data" / "ohlcv" / "binance_spot_BTCUSDT_5m_2024-01_2024-09.csv.gz"
# About 70,000 stored 5m candles per backtest: seconds of CPU each, nothing to download.
BACKTEST = {"strategy": "sma_cross", "params": {}, "exchange": "binance", "symbol": "BTC/USDT", "timeframe": "5m",
            "start": "2024-01-02T00:00:00Z", "end": "2024-08-31T00:00:00Z", "stake": 10_000}


def signed_in(base: str, email: str, password: str) -> httpx.Client:
    api = httpx.Client(base_url=f"{base}/api/v1", timeout=30)
    assert api.post("/auth/register", json={"email": email, "password": password}).status_code == 201
    login = api.post("/auth/login", data={"username": email, "password": password})
    assert login.status_code == 200, login.text
    api.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    return api


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def test_a_backtest_flood_never_delays_another_traders_ticks(e2e_database, redis_url, tmp_path):
    sim_port, api_port = free_port(), free_port()
    env = stack_env(database_url=e2e_database, redis_url=redis_url, sim_port=sim_port, SCHEDULE_INTERVAL_S="0.5",
                    BACKTEST_MAX_ACTIVE_PER_USER=str(ACTIVE_CAP), BACKTEST_WORKER_CONCURRENCY="1")
    with Stack(env=env, log_dir=tmp_path / "logs") as stack:
        for command in (["migrate"], ["data", "import", str(BTC_5M)]):
            subprocess.run([str(BIN / "tradefleet"), *command], env=stack.full_env(), cwd=REPO_ROOT, check=True,
                           capture_output=True)
        sim = stack.simulator(port=sim_port, speed=SPEED)
        stack.workers(concurrency=2)
        stack.beat(schedule_file=tmp_path / "beat-schedule")
        base = stack.api(port=api_port)
        trader = signed_in(base, "trader@example.com", "correct horse battery")
        flooder = signed_in(base, "flooder@example.com", "another horse battery")

        def create_run(params: dict) -> dict | None:  # 503 until the worker has loaded the market catalog
            reply = trader.post("/runs", json={"strategy": "sma_cross", "params": params, "exchange": "binance",
                                               "symbol": "BTC/USDT", "timeframe": "1m", "mode": "paper",
                                               "stake": 10_000})
            assert reply.status_code in (201, 503), reply.text
            return reply.json() if reply.status_code == 201 else None

        runs = [wait_for(lambda p=p: create_run(p), 90, "the market catalog", stack)
                for p in ({}, {"fast": 5, "slow": 20}, {"fast": 15, "slow": 40})]
        for run in runs:
            assert trader.post(f"/runs/{run['id']}/start").json()["status"] == "running"
        wait_for(lambda: all(trader.get(f"/runs/{r['id']}").json()["last_candle_ms"] for r in runs), 90,
                 "a first tick of every run", stack)

        # The simulator's clock against the wall clock: its time runs SPEED times faster.
        before = time.time()
        sim_ms = httpx.get(f"{sim}/api/v3/time").json()["serverTime"]
        wall0 = (before + time.time()) / 2

        def wall_close(candle_ms: int) -> float:
            return wall0 + (candle_ms + MINUTE - sim_ms) / 1000 / SPEED

        flood_start = time.time()
        with ThreadPoolExecutor(max_workers=20) as pool:
            replies = list(pool.map(lambda _: flooder.post("/backtests", json=BACKTEST), range(FLOOD)))
        statuses = [r.status_code for r in replies]
        assert statuses.count(202) == ACTIVE_CAP and statuses.count(429) == FLOOD - ACTIVE_CAP, statuses
        refused = next(r for r in replies if r.status_code == 429)
        assert "BACKTEST_MAX_ACTIVE_PER_USER" in refused.json()["detail"] and int(refused.headers["Retry-After"]) > 0

        deadline = flood_start + OBSERVE_S
        while time.time() < deadline:
            stack.check_alive()
            time.sleep(1)
        observed_until = time.time()

        backtests = flooder.get("/backtests", params={"limit": 200}).json()
        equity = {r["id"]: trader.get(f"/runs/{r['id']}/equity", params={"limit": 5000}).json() for r in runs}
        events = {r["id"]: trader.get(f"/runs/{r['id']}/events", params={"limit": 1000}).json() for r in runs}

    # The backtests really ran meanwhile, on the backtest worker.
    items = backtests["data"]
    assert backtests["count"] == len(items) == ACTIVE_CAP
    assert any(b["status"] in ("running", "done") for b in items), [b["status"] for b in items]

    # Every candle that closed in the window (but the last few seconds') was evaluated, once, by every run.
    lags: list[float] = []
    for run in runs:
        snapshots = {s["candle_ms"]: s for s in equity[run["id"]]}
        window = [c for c in snapshots if flood_start <= wall_close(c) <= observed_until - 5]
        assert window, "no candle closed in the observed window"
        expected = list(range(min(window), max(window) + MINUTE, MINUTE))
        missing = [c for c in expected if c not in snapshots]
        assert not missing, f"run {run['id']} missed candles {missing[:5]}"
        for c in expected:
            evaluated = datetime.fromisoformat(snapshots[c]["evaluated_at"].replace("Z", "+00:00")).timestamp()
            lags.append(evaluated - wall_close(c))
        skipped = [e for e in events[run["id"]] if e["kind"] == "skipped"]
        assert not skipped, skipped

    p50, p99, worst = statistics.median(lags), percentile(lags, 0.99), max(lags)
    done = sum(b["status"] == "done" for b in items)
    print(f"\nbacktest flood: {FLOOD} submitted, {ACTIVE_CAP} accepted, {done} done within {OBSERVE_S:g} s; "
          f"{len(lags)} ticks of {len(runs)} paper runs: tick lag p50 {p50:.2f} s, p99 {p99:.2f} s, "
          f"max {worst:.2f} s")
    assert p99 < 5.0, f"p99 tick lag {p99:.2f} s"
