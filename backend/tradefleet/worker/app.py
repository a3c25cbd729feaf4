"""The Celery application. Broker: Redis when ``REDIS_URL`` is set, else kombu's SQLAlchemy
transport on a SQLite file (the embedded ``make run`` defaults). Start
two kinds of worker (:mod:`tradefleet.worker.queues`): the tick worker
``celery -A tradefleet.worker.app worker -Q schedule,evaluate,default`` and the backtest worker
``nice -n 10 celery -A tradefleet.worker.app worker -Q backtests --concurrency 1``; beat with
``celery -A tradefleet.worker.app beat``."""

from __future__ import annotations

from celery import Celery

from tradefleet.config import get_settings
from tradefleet.worker.queues import DEFAULT, task_routes


def create_celery() -> Celery:
    settings = get_settings()
    app = Celery("tradefleet", broker=settings.broker_url, include=[
        "tradefleet.worker.tasks",
        "tradefleet.worker.email_tasks",  # e-mail and password-reset tasks
        "tradefleet.worker.live",  # live order reconciliation and kills
    ])
    app.conf.update(
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        enable_utc=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        task_default_queue=DEFAULT,
        # Every task to the queue of the worker that serves it: backtests, downloads and validations
        # to `backtests`, which no tick worker consumes.
        task_routes=task_routes(),
        # Redis: unacknowledged (acks_late) tasks come back after the visibility timeout. kombu's
        # SQLAlchemy transport passes its options to create_engine, so it gets none.
        broker_transport_options={"visibility_timeout": 3600} if settings.broker_url.startswith("redis") else {},
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


celery_app = create_celery()
app = celery_app
