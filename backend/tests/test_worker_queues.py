"""Queue routing: every Celery task the platform defines goes to a queue that exactly one kind of
worker serves; backtests, validations and the expiry go to ``backtests``, which the tick worker never
consumes; the processes devstack starts listen on those queues (read from their command lines)."""

from __future__ import annotations

import importlib
import os

import pytest

from tradefleet.devstack import Stack
from tradefleet.jobs import queues
from tradefleet.worker.app import celery_app

BACKTEST_TASKS = {"backtest.run", "strategies.validate", "backtest.expire"}
TICK_TASKS = {"engine.schedule", "engine.evaluate_market", "live.process_order", "live.kill_run", "live.reconcile"}


def platform_tasks() -> set[str]:
    for module in celery_app.conf.include:
        importlib.import_module(module)
    return {name for name in celery_app.tasks if not name.startswith("celery.")}


def routed_queue(name: str) -> str:
    """The queue Celery's router picks for a message of task ``name`` (as ``send_task`` does)."""
    return celery_app.amqp.router.route({}, name)["queue"].name


def test_every_task_has_a_queue_served_by_exactly_one_worker():
    tasks = platform_tasks()
    assert tasks == set(queues.TASK_QUEUES), "a task without an explicit queue, or a queue entry without a task"
    served = {kind: set(qs) for kind, qs in queues.WORKERS.items()}
    assert served["tick"].isdisjoint(served["backtest"])
    for name in tasks:
        queue = routed_queue(name)
        assert queue == queues.TASK_QUEUES[name]
        assert [kind for kind, qs in served.items() if queue in qs] in (["tick"], ["backtest"]), name


@pytest.mark.parametrize("name", sorted(BACKTEST_TASKS))
def test_backtest_work_goes_to_the_backtest_worker_only(name):
    assert routed_queue(name) == "backtests"
    assert "backtests" not in queues.TICK_QUEUES and queues.BACKTEST_QUEUES == ("backtests",)


@pytest.mark.parametrize("name", sorted(TICK_TASKS))
def test_tick_and_live_order_tasks_go_to_the_tick_worker(name):
    assert routed_queue(name) in queues.TICK_QUEUES


def test_beat_entries_are_routed_like_their_tasks():
    schedule = celery_app.conf.beat_schedule
    assert schedule["backtest.expire"]["task"] == "backtest.expire" and schedule["backtest.expire"]["schedule"] == 3600
    for entry in schedule.values():
        assert entry["task"] in queues.TASK_QUEUES


def test_unrouted_names_fall_back_to_the_tick_workers_default_queue():
    assert routed_queue("no.such.task") == "default" and "default" in queues.TICK_QUEUES


def _queue_arg(args: list[str]) -> set[str]:
    return set(args[args.index("-Q") + 1].split(","))


def test_devstack_starts_a_tick_worker_that_never_consumes_backtests(tmp_path, monkeypatch, settings_env):
    """The real ``Stack`` spawns: the command lines are read from the ``Popen`` objects it made (the
    workers are stopped right away; their start-up is covered by the end-to-end tests)."""
    settings_env(BACKTEST_WORKER_NICE=7, BACKTEST_WORKER_CONCURRENCY=1,
                 DATABASE_URL=f"sqlite:///{tmp_path / 'unused.db'}")
    with Stack(log_dir=tmp_path / "logs", grace_s=5) as stack:
        tick, backtest = stack.workers(concurrency=1)
        tick_args, backtest_args = list(tick.args), list(backtest.args)
        backtest_nice = os.getpriority(os.PRIO_PROCESS, backtest.pid)
        tick_nice = os.getpriority(os.PRIO_PROCESS, tick.pid)
        env_backtest = stack.env_for(backtest_args, decrypts=False)
    assert _queue_arg(tick_args) == {"schedule", "evaluate", "default"}
    assert _queue_arg(backtest_args) == {"backtests"}
    assert backtest_args[backtest_args.index("--concurrency") + 1] == "1"
    assert backtest_nice == tick_nice + 7, "the backtest worker runs niced (BACKTEST_WORKER_NICE)"
    assert env_backtest["VAULT_PRIVATE_KEYS"] == "", "nothing on the backtests queue opens exchange keys"
