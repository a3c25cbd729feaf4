"""Three of the worst strategies against a real Celery worker (started as ``tests/e2e`` starts one, with
the simulator and beat, on PostgreSQL and Redis): a busy loop past the budget, a fork bomb and a 10 GB
allocation, next to a good ``sma_cross`` run on the same market. The worker process and its pool
processes survive (same pids, alive), the good run keeps ticking candle after candle, and each bad run
is paused with its reason."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from sandbox_helpers import HOSTILE
from sqlmodel import select
from support.common import free_port, stack_env, wait_for

from tradefleet.config import REPO_ROOT
from tradefleet.db import session_scope
from tradefleet.devstack import BIN, Stack
from tradefleet.models import ExchangeMarket, Run, RunCreate, RunStatus, User
from tradefleet.security.passwords import hash_password
from tradefleet.services import runs as run_service

pytestmark = pytest.mark.usefixtures("sandbox_available")

WORST = {"busy_loop.py": r"took longer than 1 s; its runner was stopped",
         "fork_bomb.py": r"raised PermissionError: [Errno 1] Operation not permitted",
         "allocate_10gb.py": r"raised MemoryError"}


def children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def test_worker_survives_the_worst_and_keeps_ticking(e2e_database, redis_url, tmp_path, settings_env):
    folder = tmp_path / "strategies"
    folder.mkdir()
    shutil.copy(REPO_ROOT / "strategies" / "sma_cross.py", folder)
    for name in WORST:
        shutil.copy(HOSTILE / name, folder)
    sim_port = free_port()
    env = stack_env(database_url=e2e_database, redis_url=redis_url, sim_port=sim_port, SCHEDULE_INTERVAL_S="0.5",
                    STRATEGIES_DIR=str(folder), STRATEGY_TIMEOUT_S="1")
    with Stack(env=env, log_dir=tmp_path / "logs") as stack:
        subprocess.run([str(BIN / "tradefleet"), "migrate"], env=stack.full_env(), cwd=REPO_ROOT, check=True,
                       capture_output=True)
        stack.simulator(port=sim_port, speed=60)
        worker = stack.worker(concurrency=1)  # one pool process: the bad runs and the good one share it
        stack.beat(schedule_file=tmp_path / "beat-schedule")
        settings_env(DATABASE_URL=e2e_database, REDIS_URL=redis_url, STRATEGIES_DIR=str(folder),
                     EXCHANGE_API_URLS=env["EXCHANGE_API_URLS"], STRATEGY_TIMEOUT_S=1)

        def catalog_loaded() -> bool:  # the worker loads the market catalog when it starts
            with session_scope() as s:
                return s.get(ExchangeMarket, ("binance", "BTC/USDT")) is not None

        wait_for(catalog_loaded, 90, "the market catalog", stack)
        pool = wait_for(lambda: children(worker.pid), 30, "the worker's pool process", stack)
        with session_scope() as s:
            user = User(email="worst@example.com", hashed_password=hash_password("correct horse battery"))
            s.add(user)
            s.commit()
            s.refresh(user)
            ids = {}
            for name in ["sma_cross.py", *WORST]:
                strategy = name.removesuffix(".py").replace("allocate_10gb", "allocate10_gb")
                run = run_service.create_run(session=s, owner=user, run_in=RunCreate(
                    strategy=strategy, params={"fast": 3, "slow": 5} if name == "sma_cross.py" else {},
                    exchange="binance", symbol="BTC/USDT", timeframe="1m", mode="paper", stake=10_000.0))
                ids[name] = run_service.start_run(session=s, owner=user, run_id=run.id).id

        def runs() -> dict[str, Run]:
            with session_scope() as s:
                return {name: s.get(Run, run_id) for name, run_id in ids.items()}

        def all_paused() -> dict[str, Run] | None:
            now = runs()
            return now if all(now[n].status == RunStatus.paused for n in WORST) else None

        paused = wait_for(all_paused, 120, "the three bad runs paused", stack)
        for name, reason in WORST.items():
            assert reason in paused[name].status_reason, (name, paused[name].status_reason)
        good_then = paused["sma_cross.py"].last_candle_ms
        assert good_then is not None
        # The good run goes on ticking after the bad ones are paused, candle after candle.
        wait_for(lambda: (runs()["sma_cross.py"].last_candle_ms or 0) >= good_then + 3 * 60_000, 60,
                 "three more candles of the good run", stack)
        good = runs()["sma_cross.py"]
        assert good.status == RunStatus.running
        # The worker process and its pool process are the ones that started: none died or was replaced.
        stack.check_alive()
        assert worker.poll() is None and children(worker.pid) == pool
        with session_scope() as s:
            assert len(s.exec(select(Run).where(Run.status == RunStatus.paused)).all()) == 3
