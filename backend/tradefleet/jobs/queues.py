"""The Celery queues and which worker process serves which.

Two kinds of worker, so that a flood of backtests can never delay a tick:

* the **tick worker** serves :data:`TICK_QUEUES`: ``schedule`` (beat's ``engine.schedule``),
  ``evaluate`` (``engine.evaluate_market``) and ``default`` (the live orders' tasks: one per order,
  kills and reconciliation; e-mail, password resets, key checks, catalog refreshes, heartbeats);
* the **backtest worker** serves :data:`BACKTEST_QUEUES`, i.e. ``backtests`` only: backtest runs (with
  their candle downloads), the validation of uploaded strategies (a short backtest) and the hourly
  ``backtest.expire``. It runs niced (``BACKTEST_WORKER_NICE``) with ``BACKTEST_WORKER_CONCURRENCY``
  processes. Hourly housekeeping (``runs.prune_stopped``) runs there too.

:data:`TASK_QUEUES` maps every task name to its queue; :func:`task_routes` turns it into Celery's
``task_routes`` (:mod:`tradefleet.jobs.app`). A task not listed goes to ``default``.
"""

from __future__ import annotations

SCHEDULE = "schedule"
EVALUATE = "evaluate"
DEFAULT = "default"
BACKTESTS = "backtests"

TICK_QUEUES: tuple[str, ...] = (SCHEDULE, EVALUATE, DEFAULT)
"""Queues of the tick worker (``celery ... worker -Q schedule,evaluate,default``)."""
BACKTEST_QUEUES: tuple[str, ...] = (BACKTESTS,)
"""Queues of the backtest worker (``celery ... worker -Q backtests``); never served by a tick worker."""
ALL_QUEUES: tuple[str, ...] = TICK_QUEUES + BACKTEST_QUEUES

TASK_QUEUES: dict[str, str] = {
    "engine.schedule": SCHEDULE,
    "engine.evaluate_market": EVALUATE,
    "live.process_order": DEFAULT,
    "live.kill_run": DEFAULT,
    "live.reconcile": DEFAULT,
    "keys.check": DEFAULT,
    "email.send": DEFAULT,
    "auth.password_reset_request": DEFAULT,
    "market.refresh_catalogs": DEFAULT,
    "worker.heartbeat": DEFAULT,
    # Seconds to minutes of CPU and candle downloads of up to 600,000 candles: never before a tick.
    "backtest.run": BACKTESTS,
    # An upload's validation runs a short backtest too.
    "strategies.validate": BACKTESTS,
    "backtest.expire": BACKTESTS,
    # Housekeeping that deletes many rows: beside the backtests, never before a tick.
    "runs.prune_stopped": BACKTESTS,
}
"""Task name -> queue, for every task the platform defines."""

WORKERS: dict[str, tuple[str, ...]] = {"tick": TICK_QUEUES, "backtest": BACKTEST_QUEUES}
"""Worker kind -> the queues it consumes (``-Q`` of its ``celery worker`` command)."""


def task_routes() -> dict[str, dict[str, str]]:
    """Celery's ``task_routes``: ``{task name: {"queue": name}}`` from :data:`TASK_QUEUES`."""
    return {name: {"queue": queue} for name, queue in TASK_QUEUES.items()}


def queue_arg(kind: str) -> str:
    """The ``-Q`` value of worker ``kind`` (``"tick"`` or ``"backtest"``); ``KeyError`` otherwise."""
    return ",".join(WORKERS[kind])


__all__ = ["ALL_QUEUES", "BACKTEST_QUEUES", "TASK_QUEUES", "TICK_QUEUES", "WORKERS", "queue_arg", "task_routes"]
