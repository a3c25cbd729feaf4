"""The Celery application of the worker and beat processes: :data:`tradefleet.jobs.app.celery_app` with
the task modules and beat's schedule. Start two kinds of worker (:mod:`tradefleet.jobs.queues`): the tick
worker ``celery -A tradefleet.worker.app worker -Q schedule,evaluate,default`` and the backtest worker
``nice -n 10 celery -A tradefleet.worker.app worker -Q backtests --concurrency 1``; beat with
``celery -A tradefleet.worker.app beat``."""

from __future__ import annotations

from celery import Celery

from tradefleet.config import get_settings
from tradefleet.jobs import app as jobs_app

TASK_MODULES = [
    "tradefleet.worker.tasks",
    "tradefleet.worker.email_tasks",  # e-mail and password-reset tasks
    "tradefleet.worker.live",  # live order reconciliation and kills
]
"""The modules that define the platform's tasks, imported by a starting worker."""


def configure_worker(app: Celery) -> Celery:
    """Add :data:`TASK_MODULES`, the worker's settings (one message prefetched per process, the root
    logger left alone, broker retries at start) and beat's schedule to ``app`` (from
    :func:`tradefleet.jobs.app.create_celery`)."""
    settings = get_settings()
    app.conf.update(
        include=TASK_MODULES,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        beat_schedule={
            "engine.schedule": {
                "task": "engine.schedule",
                "schedule": settings.SCHEDULE_INTERVAL_S,
                # A schedule call that waited longer than two intervals is stale: drop it.
                "options": {"expires": max(2.0, 2 * settings.SCHEDULE_INTERVAL_S)},
            },
            "worker.heartbeat": {"task": "worker.heartbeat", "schedule": 5.0, "options": {"expires": 10}},
            "market.refresh_catalogs": {"task": "market.refresh_catalogs", "schedule": 3600.0},
            # stopped runs past RUN_MAX_STOPPED_PER_USER or RUN_RETENTION_DAYS (services/retention.py).
            "runs.prune_stopped": {"task": "runs.prune_stopped", "schedule": 3600.0, "options": {"expires": 3600}},
            # live orders that are not final are reconciled with their exchange.
            "live.reconcile": {"task": "live.reconcile", "schedule": settings.RECONCILE_INTERVAL_S,
                               "options": {"expires": settings.RECONCILE_INTERVAL_S}},
            # finished backtests older than BACKTEST_RETENTION_DAYS are deleted.
            "backtest.expire": {"task": "backtest.expire", "schedule": 3600.0, "options": {"expires": 3600}},
        },
    )
    return app


def create_celery() -> Celery:
    """A worker's Celery application on the broker of the current settings (tests build one per broker)."""
    return configure_worker(jobs_app.create_celery())


celery_app = configure_worker(jobs_app.celery_app)
app = celery_app
