"""Admin system APIs: ``GET /admin/system`` and ``PATCH /admin/strategies/{name}``.

The strategy switch is checked against the real engine: a run that was running when its strategy was
disabled is ticked by ``evaluate_market`` like any other, while new runs, starts and backtests are refused.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func
from sqlmodel import select

from tradefleet.engine.evaluate import evaluate_market
from tradefleet.engine.schedule import plan
from tradefleet.models import EquitySnapshot, Run, RunMode, RunStatus, StrategySetting, WorkerHeartbeat
from tradefleet.models._types import utcnow

SYSTEM = "/api/v1/admin/system"
SWITCH = "/api/v1/admin/strategies/{}"
MINUTE = 60_000
T0 = 1704067200000
RUN = {"strategy": "sma_cross", "params": {"fast": 3, "slow": 5}, "exchange": "binance", "symbol": "BTC/USDT",
       "timeframe": "1m", "mode": "paper", "stake": 10_000}


def test_admin_only(user_client, client):
    for method, url, body in (("GET", SYSTEM, None), ("PATCH", SWITCH.format("sma_cross"), {"enabled": False})):
        assert user_client.request(method, url, json=body).status_code == 403
        assert client.request(method, url, json=body).status_code == 401


def test_disabled_strategy_is_hidden_and_refused_while_running_runs_keep_ticking(
        admin_client, user_client, market_catalog, session):
    sim = market_catalog
    sim.clock.set(T0 + 40 * MINUTE)
    running = user_client.post("/api/v1/runs", json=RUN).json()
    assert user_client.post(f"/api/v1/runs/{running['id']}/start").json()["status"] == "running"
    idle = user_client.post("/api/v1/runs", json=RUN).json()  # created, not started

    reply = admin_client.patch(SWITCH.format("sma_cross"), json={"enabled": False})
    assert reply.status_code == 200, reply.text
    assert reply.json()["name"] == "sma_cross" and reply.json()["enabled"] is False

    # Hidden from traders, flagged for admins.
    assert "sma_cross" not in [s["name"] for s in user_client.get("/api/v1/strategies").json()]
    catalog = admin_client.get("/api/v1/admin/strategies").json()["strategies"]
    assert {s["name"]: s["enabled"] for s in catalog}["sma_cross"] is False
    assert all(s["enabled"] for s in catalog if s["name"] != "sma_cross")

    # Refused for new runs, starts and backtests; nothing written.
    runs_before = session.exec(select(func.count()).select_from(Run)).one()
    refused = user_client.post("/api/v1/runs", json=RUN)
    assert refused.status_code == 422
    assert refused.json()["errors"] == [{"field": "strategy",
                                         "message": "strategy 'sma_cross' is disabled by an administrator"}]
    assert session.exec(select(func.count()).select_from(Run)).one() == runs_before
    start = user_client.post(f"/api/v1/runs/{idle['id']}/start")
    assert start.status_code == 422 and start.json()["errors"][0]["field"] == "strategy"
    backtest = user_client.post("/api/v1/backtests", json={
        **{k: v for k, v in RUN.items() if k != "mode"}, "start": "2024-01-01T00:00:00Z", "end": "2024-01-02T00:00:00Z"})
    assert backtest.status_code == 422 and backtest.json()["errors"][0]["field"] == "strategy"

    # The running run keeps running: the engine ticks it.
    for minute in (41, 42, 43):
        sim.clock.set(T0 + minute * MINUTE + 1)
        for d in plan():
            evaluate_market(d.market, d.candle_ms, d.run_ids, limit=d.limit)
    session.expire_all()
    run = session.get(Run, uuid.UUID(running["id"]))
    assert run.status == RunStatus.running
    snapshots = session.exec(select(func.count()).select_from(EquitySnapshot)
                             .where(EquitySnapshot.run_id == run.id)).one()
    assert snapshots >= 3

    # Enabled again: visible and usable.
    assert admin_client.patch(SWITCH.format("sma_cross"), json={"enabled": True}).json()["enabled"] is True
    assert "sma_cross" in [s["name"] for s in user_client.get("/api/v1/strategies").json()]
    assert user_client.post(f"/api/v1/runs/{idle['id']}/start").status_code == 200


def test_switch_validation(admin_client, session):
    missing = admin_client.patch(SWITCH.format("no_such_strategy"), json={"enabled": False})
    assert missing.status_code == 404 and "no_such_strategy" in missing.json()["detail"]
    for body, field in (({}, "enabled"), ({"enabled": "nope"}, "enabled"), ({"enabled": 1}, "enabled")):
        reply = admin_client.patch(SWITCH.format("sma_cross"), json=body)
        assert reply.status_code == 422 and reply.json()["errors"][0]["field"] == field
    assert admin_client.patch(SWITCH.format("x" * 101), json={"enabled": False}).status_code == 422
    assert session.exec(select(func.count()).select_from(StrategySetting)).one() == 0


def test_system_reports_workers_database_runs_and_tick_lag(admin_client, session, make_user):
    now = utcnow()
    session.add(WorkerHeartbeat(hostname="alive-host:1", pid=11, beat_at=now - timedelta(seconds=3)))
    session.add(WorkerHeartbeat(hostname="dead-host:2", pid=22, beat_at=now - timedelta(minutes=5)))
    owner, _ = make_user(email="lagging@example.com")

    def run(last_candle_ms, tick_ago_s, status=RunStatus.running):
        row = Run(owner_id=owner.id, strategy="sma_cross", params={}, exchange="binance", symbol="BTC/USDT",
                  timeframe="1m", mode=RunMode.paper, stake=100, cash=100, status=status,
                  last_candle_ms=last_candle_ms, started_at=now - timedelta(hours=1),
                  last_tick_at=now - timedelta(seconds=tick_ago_s) if tick_ago_s is not None else None)
        session.add(row)
        return row

    current, behind = run(T0 + 10 * MINUTE, 2), run(T0 + 7 * MINUTE, 300)
    run(None, None)  # started, never ticked
    run(T0, 5, status=RunStatus.stopped)
    session.commit()

    body = admin_client.get(SYSTEM).json()
    assert body["database"]["ok"] is True and body["database"]["dialect"] in ("sqlite", "postgresql")
    assert body["workers"]["alive"] == 1
    assert {w["hostname"]: w["alive"] for w in body["workers"]["workers"]} == {"alive-host:1": True,
                                                                              "dead-host:2": False}
    assert body["runs"] == {"created": 0, "running": 3, "paused": 0, "stopped": 1}
    lag = body["tick_lag"]
    assert lag["running"] == 3 and lag["max_candles_behind"] == 3
    by_id = {r["run_id"]: r for r in lag["runs"]}
    assert by_id[str(behind.id)]["candles_behind"] == 3 and by_id[str(current.id)]["candles_behind"] == 0
    assert by_id[str(behind.id)]["owner_email"] == "lagging@example.com"
    assert by_id[str(behind.id)]["seconds_since_tick"] >= 300 > by_id[str(current.id)]["seconds_since_tick"]
    assert lag["runs"][0]["seconds_since_tick"] >= 3600 - 1  # the never-ticked run, since its start
    assert lag["max_seconds_since_tick"] == lag["runs"][0]["seconds_since_tick"]
    assert body["redis"] == {"configured": False, "ok": None}


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_system_reads_redis_and_the_celery_queue_depth(admin_client, redis_url, monkeypatch):
    import tradefleet.jobs.app as jobs_app

    app = jobs_app.create_celery()  # on this test's Redis
    monkeypatch.setattr(jobs_app, "celery_app", app)
    for _ in range(3):
        app.send_task("backtest.run", args=[str(uuid.uuid4())], queue="backtests")
    app.send_task("engine.schedule", queue="schedule")

    body = admin_client.get(SYSTEM).json()
    assert body["redis"]["configured"] is True and body["redis"]["ok"] is True and body["redis"]["version"]
    broker = body["broker"]
    assert broker["ok"] is True and broker["transport"] == "redis"
    assert {q["name"]: q["depth"] for q in broker["queues"]} == {"schedule": 1, "evaluate": 0, "default": 0,
                                                                 "backtests": 3}


def test_system_reports_a_redis_that_is_down(admin_client, settings_env):
    settings_env(REDIS_URL="redis://127.0.0.1:9/0")  # nothing listens on port 9
    body = admin_client.get(SYSTEM)
    assert body.status_code == 200
    assert body.json()["redis"]["ok"] is False and "ConnectionError" in body.json()["redis"]["error"]
