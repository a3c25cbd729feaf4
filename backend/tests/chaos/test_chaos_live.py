"""Chaos test of the live order path, with real processes: the exchange simulator
(private side, one account per run), PostgreSQL, Redis, Celery beat and a Celery worker running
several live runs of the test strategy ``flip`` (an order per run on every candle, the simulator at
high speed). At random moments, at least ``KILLS`` times, SIGKILL hits either the whole worker (main
process and pool; a new worker is started, which reconciles on start) or the pool processes running
the tasks (the main process forks new ones; the lost tasks are delivered again, ``acks_late``); some
order requests have their reply lost after the exchange applied them (the simulator's
``when: after`` fault). Then beat stops, a final worker start reconciles, and:

* no client order id appears twice on the exchange (no order doubled),
* every order on the exchange is in the database with the exchange's id and filled amount (none lost),
* every exchange trade is recorded once as a fill,
* each run's cash and position equal its simulator account's balances.

The counts (kills, orders, duplicates, missing) are printed and asserted.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import select
from support.common import free_port, stack_env, vault_settings, wait_for

from tradefleet.config import REPO_ROOT
from tradefleet.devstack import BIN, Stack

KILLS = 22
RUNS = 3
STAKE = 1000.0
STRATEGIES = Path(__file__).resolve().parents[1] / "live" / "strategies"




def _children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (Linux ``/proc``): a prefork worker's pool processes."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _killpg(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def test_sigkilled_workers_never_double_or_lose_a_live_order(e2e_database, redis_url, settings_env, tmp_path,
                                                            figures):
    from tradefleet.db import session_scope
    from tradefleet.execution.reconcile import pending_orders
    from tradefleet.models import Fill, Order, Run, RunCreate, RunStatus, UserCreate
    from tradefleet.services import runs as run_service
    from tradefleet.services.users import create_user

    from support.live import balances, provision, store_account

    rng = random.Random(int(os.environ.get("CHAOS_SEED", "4")))
    sim_port = free_port()
    extra = dict(SCHEDULE_INTERVAL_S="0.25", STRATEGIES_DIR=str(STRATEGIES), **vault_settings(),
                 LIVE_BACKOFF_S="0.05", RECONCILE_INTERVAL_S="5", CCXT_TIMEOUT_MS="4000",
                 ENGINE_MAX_CATCHUP_CANDLES="5")
    env = stack_env(database_url=e2e_database, redis_url=redis_url, sim_port=sim_port, **extra)
    settings_env(**{k: v for k, v in env.items() if k != "JWT_SECRET_KEY"})
    logs = tmp_path / "logs"
    kills = worker_kills = pool_kills = 0
    lost_replies = 0
    with Stack(env=env, log_dir=logs, grace_s=5) as stack:
        subprocess.run([str(BIN / "tradefleet"), "migrate"], env=stack.full_env(), cwd=REPO_ROOT, check=True,
                       capture_output=True)
        base = stack.simulator(port=sim_port, speed=60)
        worker_log = logs / "worker.log"
        starts = [0]

        def start_worker() -> subprocess.Popen:
            """A worker as in production (all queues), without the start-up chatter that only slows
            a restart (mingle, gossip); returns once it is ready to take tasks."""
            proc = stack.spawn("worker", str(BIN / "celery"), "-A", "tradefleet.worker.app", "worker",
                               "-Q", "schedule,evaluate,default,backtests", "--concurrency", "2",
                               "--loglevel", "INFO", "-n", "chaos@%h", "--without-mingle", "--without-gossip")
            starts[0] += 1
            wait_for(lambda: worker_log.read_text(errors="replace").count(" ready.") >= starts[0], 60,
                     "the worker to be ready", stack, every_s=0.1)
            return proc

        worker = start_worker()

        with session_scope() as session:
            user = create_user(session=session, user_in=UserCreate(email="chaos@example.com",
                                                                    password="chaos password 123"),
                               is_verified=True)
            accounts = []
            for _ in range(RUNS):
                api_key, secret = provision(base, {"USDT": str(STAKE)})
                accounts.append((api_key, store_account(session, user.id, api_key, secret)))

        def catalog_loaded():
            from tradefleet.market.catalog import catalog_loaded as loaded

            with session_scope() as s:
                return loaded(session=s, exchange_id="binance")

        wait_for(catalog_loaded, 90, "the worker to load the market catalog", stack)
        run_ids = []
        with session_scope() as session:
            for api_key, account in accounts:
                run = run_service.create_run(session=session, owner=user, run_in=RunCreate(
                    strategy="flip", params={}, exchange="binance", symbol="BTC/USDT", timeframe="1m",
                    mode="live", stake=STAKE, exchange_account_id=account.id))
                run_service.start_run(session=session, owner=user, run_id=run.id)
                run_ids.append(run.id)
        beat = stack.beat(schedule_file=tmp_path / "beat-schedule")

        def orders_so_far() -> int:
            with session_scope() as s:
                return s.exec(select(func.count()).select_from(Order).where(Order.run_id.in_(run_ids))).one()

        wait_for(lambda: orders_so_far() >= RUNS, 90, "the first live orders", stack)
        while kills < KILLS:
            if rng.random() < 0.35:
                # The next order request is applied by the exchange and its reply lost.
                httpx.post(f"{base}/sim/faults", json={"kind": "error", "when": "after", "count": 1,
                                                       "paths": ["POST /api/v3/order"]}).raise_for_status()
                lost_replies += 1
            # Kill while orders are being placed: once the (new) worker has placed at least one more
            # order, at a random moment within the next 1.5 s.
            placed = orders_so_far()
            deadline = time.monotonic() + 30
            while orders_so_far() <= placed and time.monotonic() < deadline:
                stack.check_alive()
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 1.5))
            if kills % 5 == 0:
                # The whole worker (its main process and pool) dies; a new one starts and reconciles.
                _killpg(worker)
                worker_kills += 1
                worker = start_worker()
            else:
                # The pool processes running the tasks die mid-task (the main process forks new ones
                # and, with acks_late, the lost tasks are delivered again).
                pool = _children(worker.pid)
                for pid in pool:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                pool_kills += 1
            kills += 1

        # Final: no more ticks, one clean worker start, and its reconciliation.
        _killpg(beat)
        del stack.procs["beat"]
        time.sleep(1.0)
        _killpg(worker)
        kills += 1
        worker_kills += 1
        httpx.delete(f"{base}/sim/faults").raise_for_status()
        worker = start_worker()
        from tradefleet.worker.app import celery_app

        asked = [time.monotonic()]

        def reconciled() -> bool:
            if not pending_orders(run_ids):
                return True
            if time.monotonic() - asked[0] > 5:  # as beat would: ask the worker to reconcile again
                celery_app.send_task("live.reconcile")
                asked[0] = time.monotonic()
            return False

        wait_for(reconciled, 120, "reconciliation of every pending live order", stack, every_s=1.0)

        duplicates = missing = mismatched = 0
        exchange_total = 0
        with session_scope() as session:
            for (api_key, _), run_id in zip(accounts, run_ids):
                view = httpx.get(f"{base}/sim/accounts/{api_key}").json()
                remote = view["orders"]
                exchange_total += len(remote)
                ids = [o["clientOrderId"] for o in remote]
                duplicates += len(ids) - len(set(ids))
                local = {o.client_order_id: o for o in session.exec(select(Order).where(Order.run_id == run_id))}
                for o in remote:
                    mine = local.get(o["clientOrderId"])
                    if mine is None:
                        missing += 1
                    elif mine.exchange_order_id != str(o["orderId"]) or abs(mine.filled - float(o["executedQty"])) > 1e-12:
                        mismatched += 1
                fills = session.exec(select(Fill).where(Fill.run_id == run_id)).all()
                assert len(fills) == len(view["trades"]), "every exchange trade recorded exactly once"
                assert len({f.exchange_trade_id for f in fills}) == len(fills)
                run = session.get(Run, run_id)
                held = balances(base, api_key)
                assert run.position_amount == pytest.approx(held.get("BTC", 0.0), abs=1e-8), run_id
                assert run.cash == pytest.approx(held.get("USDT", 0.0), abs=1e-6), run_id
                assert run.status == RunStatus.running, run.status_reason
            db_orders = session.exec(select(func.count()).select_from(Order).where(Order.run_id.in_(run_ids))).one()
            unsent = session.exec(select(func.count()).select_from(Order).where(
                Order.run_id.in_(run_ids), Order.exchange_order_id.is_(None))).one()

    counts = (f"kills={kills} (whole worker: {worker_kills}, pool processes mid-task: {pool_kills}) "
              f"lost_replies={lost_replies} runs={RUNS} exchange_orders={exchange_total} "
              f"db_orders={db_orders} (never sent: {unsent}) duplicates={duplicates} missing={missing} "
              f"mismatched={mismatched}")
    print(f"chaos: {counts}")
    figures.add("chaos test counts", "chaos", counts)
    assert kills >= 20
    assert exchange_total >= 2 * RUNS, "the runs placed orders while the worker was being killed"
    assert duplicates == 0
    assert missing == 0
    assert mismatched == 0
