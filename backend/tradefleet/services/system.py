"""What an admin's system page shows: workers alive, Celery queue depth, database and Redis
status, and how far behind the running runs are. Read-only; never calls an exchange; every probe
reports its failure instead of raising, so the page works exactly when something is down."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, text
from sqlmodel import Session, select

from tradefleet.config import get_settings
from tradefleet.models import Run, RunStatus, User, WorkerHeartbeat
from tradefleet.models._types import utcnow
from tradefleet.jobs.queues import ALL_QUEUES
from tradefleet.times import timeframe_ms

log = logging.getLogger(__name__)

WORKER_STALE_AFTER = timedelta(seconds=30)
"""A worker whose heartbeat (every 5 s) is older than this counts as dead (as in ``GET /health``)."""
QUEUES = ALL_QUEUES
"""The Celery queues of :mod:`tradefleet.jobs.queues`."""
LAGGING_LISTED = 20


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def database_status(session: Session) -> dict[str, Any]:
    """``{ok, dialect, error?}``."""
    try:
        session.exec(text("SELECT 1"))
        return {"ok": True, "dialect": session.get_bind().dialect.name}
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        session.rollback()
        return {"ok": False, "dialect": session.get_bind().dialect.name, "error": _error(exc)}


def redis_status() -> dict[str, Any]:
    """``{configured, ok, version?, used_memory_bytes?, error?}``; ``ok`` is None when no Redis is
    configured (the embedded mode needs none)."""
    url = get_settings().REDIS_URL
    if not url:
        return {"configured": False, "ok": None}
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        info = client.info()
        return {"configured": True, "ok": True, "version": info.get("redis_version"),
                "used_memory_bytes": info.get("used_memory")}
    except redis.RedisError as exc:
        return {"configured": True, "ok": False, "error": _error(exc)}
    finally:
        client.close()


def queue_depths() -> dict[str, Any]:
    """``{transport, ok, queues: [{name, depth}], error?}``: messages waiting in each Celery queue
    (Redis: the queue's list length; SQLAlchemy transport: its visible rows), read through kombu's
    virtual channel. Tasks a worker has taken are not counted."""
    from tradefleet.jobs.app import celery_app

    transport = get_settings().broker_url.split(":", 1)[0]
    try:
        with celery_app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
            channel = connection.default_channel
            queues = [{"name": name, "depth": int(channel._size(name))} for name in QUEUES]  # noqa: SLF001
        return {"transport": transport, "ok": True, "queues": queues}
    except Exception as exc:  # noqa: BLE001
        return {"transport": transport, "ok": False, "queues": [], "error": _error(exc)}


def workers(session: Session, now: datetime) -> dict[str, Any]:
    """``{alive, stale_after_s, workers: [{hostname, pid, beat_at, alive}]}`` from the heartbeat rows."""
    rows = session.exec(select(WorkerHeartbeat).order_by(WorkerHeartbeat.beat_at.desc())).all()
    listed = [{"hostname": r.hostname, "pid": r.pid, "beat_at": r.beat_at,
               "alive": now - r.beat_at <= WORKER_STALE_AFTER} for r in rows]
    return {"alive": sum(w["alive"] for w in listed), "stale_after_s": WORKER_STALE_AFTER.total_seconds(),
            "workers": listed}


def tick_lag(session: Session, now: datetime) -> dict[str, Any]:
    """How far behind the running runs are, without asking any exchange for its time.

    Per running run: ``seconds_since_tick`` (wall time since the engine last wrote it; since it was
    started when it never ticked), ``candles_behind`` (candles behind the freshest running run of the
    same market: 0 when the whole market is current) and ``candle_age_s`` (wall time since its last
    evaluated candle closed: about one timeframe on a real exchange, meaningless against the
    simulator's own clock). Returns ``{running, max_seconds_since_tick, max_candles_behind, runs}``
    with the :data:`LAGGING_LISTED` runs longest without a tick."""
    rows = session.exec(
        select(Run.id, Run.exchange, Run.symbol, Run.timeframe, Run.strategy, Run.last_candle_ms, Run.last_tick_at,
               Run.started_at, User.email)
        .join(User, User.id == Run.owner_id).where(Run.status == RunStatus.running)).all()
    freshest: dict[tuple[str, str, str], int] = {}
    for r in rows:
        if r.last_candle_ms is not None:
            key = (r.exchange, r.symbol, r.timeframe)
            freshest[key] = max(freshest.get(key, r.last_candle_ms), r.last_candle_ms)
    runs = []
    for r in rows:
        tf = timeframe_ms(r.timeframe)
        since = r.last_tick_at or r.started_at
        best = freshest.get((r.exchange, r.symbol, r.timeframe))
        runs.append({
            "run_id": r.id, "owner_email": r.email, "strategy": r.strategy,
            "market": f"{r.exchange} {r.symbol} {r.timeframe}", "last_candle_ms": r.last_candle_ms,
            "last_tick_at": r.last_tick_at,
            "seconds_since_tick": round((now - since).total_seconds(), 3) if since else None,
            "candles_behind": (best - r.last_candle_ms) // tf if best is not None and r.last_candle_ms is not None
            else None,
            "candle_age_s": round(now.timestamp() - (r.last_candle_ms + tf) / 1000, 3)
            if r.last_candle_ms is not None else None,
        })
    runs.sort(key=lambda x: -(x["seconds_since_tick"] or 0))
    return {
        "running": len(runs),
        "max_seconds_since_tick": max((x["seconds_since_tick"] or 0 for x in runs), default=None),
        "max_candles_behind": max((x["candles_behind"] or 0 for x in runs), default=None),
        "runs": runs[:LAGGING_LISTED],
    }


def run_counts(session: Session) -> dict[str, int]:
    """Runs per status (every status present, 0 when none)."""
    counts = dict(session.exec(select(Run.status, func.count()).group_by(Run.status)).all())
    return {status.value: int(counts.get(status, 0)) for status in RunStatus}


def strategy_sandbox() -> dict[str, Any]:
    """The strategy sandbox as this process sees it: ``{ok, available, mode, reason}``. ``ok`` when
    strategy code can run (sandboxed, or unsandboxed because the admin opted in for bundled files)."""
    from tradefleet.sandbox import sandbox_status

    status = sandbox_status()
    return {"ok": status.available or status.mode == "unsandboxed", **status.to_json()}


def system_status(session: Session) -> dict[str, Any]:
    """Everything above in one reply (see ``GET /api/v1/admin/system``)."""
    now = utcnow()
    database = database_status(session)
    report: dict[str, Any] = {"checked_at": now, "database": database, "redis": redis_status(),
                              "broker": queue_depths(), "sandbox": strategy_sandbox()}
    if database["ok"]:
        report.update(workers=workers(session, now), runs=run_counts(session), tick_lag=tick_lag(session, now))
    else:
        report.update(workers=None, runs=None, tick_lag=None)
    return report
