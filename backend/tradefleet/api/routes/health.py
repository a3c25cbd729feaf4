"""Liveness of the platform's parts, for monitors and the admin page (public: monitors hold no token)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Response
from sqlalchemy import text
from sqlmodel import select

from tradefleet.api.deps import SessionDep
from tradefleet.models import WorkerHeartbeat
from tradefleet.models._types import utcnow
from tradefleet.services.system import strategy_sandbox

router = APIRouter(tags=["health"])

WORKER_STALE_AFTER = timedelta(seconds=30)


def _check_broker() -> dict:
    from tradefleet.jobs.app import celery_app

    try:
        with celery_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
        return {"ok": True}
    except Exception as exc:  # noqa: BLE001 - report, do not raise
        return {"ok": False, "error": type(exc).__name__}


@router.get("/health", responses={503: {"description": "a part is down: the same body, status degraded"}})
def health(session: SessionDep, response: Response) -> dict:
    """``{"status": "ok"|"degraded", "database": {...}, "broker": {...}, "worker": {...},
    "sandbox": {"ok", "available", "mode", "reason"}}``; HTTP 503 when any part is down. The worker counts
    as alive when one wrote its heartbeat in the last 30 s. The sandbox is this process's probe of the
    strategy sandbox: not ok when strategy code cannot run here (no sandbox and no opt-in to run the
    bundled strategies without it)."""
    try:
        session.exec(text("SELECT 1"))
        database = {"ok": True}
    except Exception as exc:  # noqa: BLE001
        database = {"ok": False, "error": type(exc).__name__}
    broker = _check_broker()
    worker: dict = {"ok": False, "alive": 0}
    if database["ok"]:
        since = utcnow() - WORKER_STALE_AFTER
        beats = session.exec(select(WorkerHeartbeat).where(WorkerHeartbeat.beat_at >= since)).all()
        worker = {"ok": bool(beats), "alive": len(beats),
                  "last_beat_at": max((b.beat_at for b in beats), default=None)}
    sandbox = strategy_sandbox()
    ok = database["ok"] and broker["ok"] and worker["ok"] and sandbox["ok"]
    if not ok:
        response.status_code = 503
    return {"status": "ok" if ok else "degraded", "database": database, "broker": broker, "worker": worker,
            "sandbox": sandbox}
