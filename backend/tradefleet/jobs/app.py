"""The Celery application object. Broker: Redis when ``REDIS_URL`` is set, else kombu's SQLAlchemy
transport on a SQLite file (the embedded ``make run`` defaults).

A process that only sends tasks (the API, the CLI) uses :data:`celery_app` as it is: serialisation,
and the route of every task name to its queue (:mod:`tradefleet.jobs.queues`), which Celery applies when
a message is sent. :mod:`tradefleet.worker.app` adds the task modules and beat's schedule to the same
object for the worker and beat processes.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from tradefleet.config import get_settings
from tradefleet.jobs.queues import DEFAULT, task_routes

SEND_RETRY_POLICY: dict[str, float] = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5}
"""kombu's retry policy for publishing one message while the broker connection is being re-established:
at most 3 retries, 0.2 s before the first, 0.5 s more before each next one."""


def create_celery() -> Celery:
    """A Celery application on the broker of the current settings, routing every task to its queue."""
    settings = get_settings()
    app = Celery("tradefleet", broker=settings.broker_url)
    app.conf.update(
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        enable_utc=True,
        task_default_queue=DEFAULT,
        # Every task to the queue of the worker that serves it: backtests, downloads and validations
        # to `backtests`, which no tick worker consumes.
        task_routes=task_routes(),
        # Redis: unacknowledged (acks_late) tasks come back after the visibility timeout. kombu's
        # SQLAlchemy transport passes its options to create_engine, so it gets none.
        broker_transport_options={"visibility_timeout": 3600} if settings.broker_url.startswith("redis") else {},
    )
    return app


celery_app = create_celery()


def send_task(name: str, *args: Any) -> None:
    """Publish task ``name`` with positional ``args`` (JSON values) to its queue, retrying the publish
    per :data:`SEND_RETRY_POLICY`. Raises the broker's error (kombu's ``OperationalError``, ``OSError``)
    when it cannot be reached; callers decide whether that fails their request."""
    celery_app.send_task(name, args=list(args), retry=True, retry_policy=SEND_RETRY_POLICY)


__all__ = ["SEND_RETRY_POLICY", "celery_app", "create_celery", "send_task"]
