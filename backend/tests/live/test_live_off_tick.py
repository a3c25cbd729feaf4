"""A slow exchange account never delays its market's other runs: live orders are sent and looked up by
tasks of their own after the tick's commit, never inside a market's tick. Real processes: the simulator
(private side), PostgreSQL, Redis, Celery beat and a worker (2 pool processes, as in production); one live
run's account answers every order request 10 s late (the simulator's ``latency`` fault for that API key).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest
from sqlmodel import select
from support.common import free_port, stack_env, vault_settings, wait_for

from tradefleet.config import REPO_ROOT
from tradefleet.devstack import BIN, Stack

SPEED = 20.0  # a 1m candle every 3 wall seconds
LATENCY_S = 10.0
WINDOW_S = 36.0
STRATEGIES = Path(__file__).resolve().parent / "strategies"
ORDER_PATHS = ["/api/v3/order", "/api/v3/openOrders", "/api/v3/allOrders", "/api/v3/myTrades"]


def test_a_slow_exchange_account_never_delays_the_other_runs_of_its_market(e2e_database, redis_url, settings_env,
                                                                           tmp_path):
    from tradefleet.db import session_scope
    from tradefleet.execution.reconcile import pending_orders
    from tradefleet.models import EquitySnapshot, Fill, Order, Run, RunCreate, RunStatus, UserCreate
    from tradefleet.services import runs as run_service
    from tradefleet.services.users import create_user

    from support.live import provision, store_account

    sim_port = free_port()
    extra = dict(SCHEDULE_INTERVAL_S="0.25", STRATEGIES_DIR=str(STRATEGIES), **vault_settings(),
                 LIVE_BACKOFF_S="0.05", RECONCILE_INTERVAL_S="5", CCXT_TIMEOUT_MS="30000",
                 ENGINE_MAX_CATCHUP_CANDLES="5")
    env = stack_env(database_url=e2e_database, redis_url=redis_url, sim_port=sim_port, **extra)
    settings_env(**{k: v for k, v in env.items() if k != "JWT_SECRET_KEY"})
    logs = tmp_path / "logs"
    with Stack(env=env, log_dir=logs, grace_s=5) as stack:
        subprocess.run([str(BIN / "tradefleet"), "migrate"], env=stack.full_env(), cwd=REPO_ROOT, check=True,
                       capture_output=True)
        base = stack.simulator(port=sim_port, speed=SPEED)
        stack.spawn("worker", str(BIN / "celery"), "-A", "tradefleet.worker.app", "worker",
                    "-Q", "schedule,evaluate,default,backtests", "--concurrency", "2", "--loglevel", "INFO",
                    "-n", "offtick@%h", "--without-mingle", "--without-gossip")
        wait_for(lambda: " ready." in (logs / "worker.log").read_text(errors="replace"), 60, "the worker", stack)

        with session_scope() as session:
            user = create_user(session=session, user_in=UserCreate(email="slow@example.com",
                                                                    password="slow account 123"), is_verified=True)
            slow_key, slow_secret = provision(base, {"USDT": "1000"})
            fast_key, fast_secret = provision(base, {"USDT": "1000"})
            slow_account = store_account(session, user.id, slow_key, slow_secret)
            fast_account = store_account(session, user.id, fast_key, fast_secret)

        def catalog_loaded():
            from tradefleet.market.catalog import catalog_loaded as loaded

            with session_scope() as s:
                return loaded(session=s, exchange_id="binance")

        wait_for(catalog_loaded, 90, "the worker to load the market catalog", stack)
        httpx.post(f"{base}/sim/faults", json={"kind": "latency", "count": None, "paths": ORDER_PATHS,
                                               "api_key": slow_key, "delay_s": LATENCY_S}).raise_for_status()
        with session_scope() as session:
            def start(mode: str, account=None) -> object:
                run = run_service.create_run(session=session, owner=user, run_in=RunCreate(
                    strategy="flip", params={}, exchange="binance", symbol="BTC/USDT", timeframe="1m", mode=mode,
                    stake=1000.0, exchange_account_id=account.id if account else None))
                return run_service.start_run(session=session, owner=user, run_id=run.id).id

            slow = start("live", slow_account)
            fast = start("live", fast_account)
            papers = [start("paper") for _ in range(3)]
        stack.beat(schedule_file=tmp_path / "beat-schedule")
        others = [fast, *papers]

        # Watch the window: the simulator's clock maps candle times to wall times.
        wait_for(lambda: _snapshots(session_scope, EquitySnapshot, others), 60, "the first ticks", stack)
        status = httpx.get(f"{base}/sim/status").json()
        wall0, sim0 = time.time(), status["now_ms"]
        time.sleep(WINDOW_S)
        stack.check_alive()
        wall1 = time.time()
        sim1 = sim0 + (wall1 - wall0) * SPEED * 1000

        lags: list[float] = []
        with session_scope() as session:
            for run_id in others:
                rows = session.exec(select(EquitySnapshot).where(EquitySnapshot.run_id == run_id)).all()
                closes = {r.candle_ms: r for r in rows}
                # Every candle that closed inside the window (with a candle of slack at the end) was ticked.
                first = int((sim0 // 60_000) + 1) * 60_000
                due = range(first, int(sim1) - 2 * 60_000 - 60_000, 60_000)
                assert due, "the window holds candles"
                missing = [t for t in due if t not in closes]
                assert missing == [], f"run {run_id} missed candles {missing}"
                for t in due:
                    closed_wall = wall0 + ((t + 60_000) - sim0) / SPEED / 1000
                    lags.append(closes[t].evaluated_at.timestamp() - closed_wall)
            slow_orders = session.exec(select(Order).where(Order.run_id == slow)).all()
            slow_run = session.get(Run, slow)
        faults = httpx.get(f"{base}/sim/faults").json()["faults"]
        print(f"other runs: {len(lags)} ticks, lag max {max(lags):.2f} s; slow account: {len(slow_orders)} orders, "
              f"{faults[0]['hits']} requests delayed {LATENCY_S:g} s")
        assert max(lags) < 5.0, "a run of the slow account's market ticked late"
        assert faults[0]["hits"] >= 1, "the slow account's order requests were delayed"
        assert slow_orders, "the slow run decided and placed orders"
        assert slow_run.status == RunStatus.running, slow_run.status_reason

        # Then the slow account's orders resolve, none doubled or lost.
        httpx.delete(f"{base}/sim/faults").raise_for_status()
        wait_for(lambda: not pending_orders([slow]), 120, "the slow account's orders to resolve", stack,
                 every_s=1.0)
        with session_scope() as session:
            remote = httpx.get(f"{base}/sim/accounts/{slow_key}").json()
            ids = [o["clientOrderId"] for o in remote["orders"]]
            local = {o.client_order_id: o for o in session.exec(select(Order).where(Order.run_id == slow))}
            assert len(ids) == len(set(ids)), "an order was doubled"
            assert set(ids) <= set(local), "an order on the exchange is missing from the database"
            fills = session.exec(select(Fill).where(Fill.run_id == slow)).all()
            assert len(fills) == len(remote["trades"]), "every exchange trade recorded exactly once"
            assert ids, "the slow account's orders reached the exchange"


def _snapshots(session_scope, model, run_ids) -> bool:
    with session_scope() as session:
        return all(session.exec(select(model).where(model.run_id == r)).first() is not None for r in run_ids)
