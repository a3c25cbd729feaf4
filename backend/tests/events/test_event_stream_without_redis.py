"""The live stream without Redis (the embedded ``make run``): events are rows of ``live_event`` written by
another process (here the test process plays the worker) and read by the API's stream. Real uvicorn on
a SQLite file, no Redis anywhere."""

from __future__ import annotations

import secrets
import subprocess
import uuid

import httpx
from support.sse_client import SSEReader
from support.common import free_port

from tradefleet.config import REPO_ROOT
from tradefleet.devstack import BIN, Stack
from tradefleet.events.outbox import Outbox, publish
from tradefleet.events.updates import BacktestUpdate, EquityUpdate, LogUpdate, StatusUpdate
from tradefleet.models import BacktestStatus, RunStatus


def test_stream_reads_events_another_process_published_to_the_database(tmp_path, settings_env):
    database_url = f"sqlite:///{tmp_path / 'embedded.db'}"
    env = {"ENVIRONMENT": "test", "DATABASE_URL": database_url, "REDIS_URL": "",
           "CELERY_BROKER_URL": f"sqla+sqlite:///{tmp_path / 'broker.db'}",
           "JWT_SECRET_KEY": "embedded-" + secrets.token_hex(16), "EVENTS_POLL_S": "0.2"}
    with Stack(env=env, log_dir=tmp_path / "logs") as stack:
        subprocess.run([str(BIN / "tradefleet"), "migrate"], env=stack.full_env(), cwd=REPO_ROOT, check=True,
                       capture_output=True)
        base = stack.api(port=free_port())
        api = httpx.Client(base_url=f"{base}/api/v1", timeout=10)
        users = {}
        for email in ("carol@example.com", "dave@example.com"):
            assert api.post("/auth/register", json={"email": email, "password": "correct horse battery"}).status_code == 201
            token = api.post("/auth/login", data={"username": email, "password": "correct horse battery"}).json()
            users[email] = (uuid.UUID(api.get("/users/me", headers={"Authorization": f"Bearer {token['access_token']}"})
                                      .json()["id"]), token["access_token"])
        carol, carol_token = users["carol@example.com"]
        dave, _ = users["dave@example.com"]

        def ticket() -> str:
            return api.post("/events/ticket", headers={"Authorization": f"Bearer {carol_token}"}).json()["ticket"]

        # This process publishes as a worker would: same database, no Redis.
        settings_env(DATABASE_URL=database_url, REDIS_URL=None)
        before_run, daves_run, run_id, backtest_id = (uuid.uuid4() for _ in range(4))
        before = LogUpdate.of(before_run, dict(id=1, created_at="2026-01-02T03:04:05+00:00", candle_ms=None,
                                               level="info", kind="log", message="before the stream", data={}))
        assert publish(carol, before) == 1  # before connecting: not replayed
        with SSEReader(f"{base}/api/v1/events/stream", params={"ticket": ticket()}) as stream:
            assert stream.status_code == 200 and stream.next("ready", timeout_s=15)
            assert publish(dave, StatusUpdate(run_id=daves_run, status=RunStatus.running, status_reason=None)) == 1
            box = Outbox()
            box.add(carol, StatusUpdate(run_id=run_id, status=RunStatus.running, status_reason=None))
            box.add(carol, EquityUpdate(run_id=run_id, candle_ms=1, equity=10_000.5, cash=10_000.5,
                                        position_amount=0.0, price=100.25))
            box.add(carol, BacktestUpdate(backtest_id=backtest_id, status=BacktestStatus.running, progress=40,
                                          stage="simulating"))
            assert box.publish() == 3
            got = [stream.next(timeout_s=15) for _ in range(3)]
        assert [(e.event, e.json()) for e in got] == [
            ("status", {"run_id": str(run_id), "status": "running", "status_reason": None}),
            ("equity", {"run_id": str(run_id), "candle_ms": 1, "equity": 10_000.5, "cash": 10_000.5,
                        "position_amount": 0.0, "price": 100.25}),
            ("backtest", {"backtest_id": str(backtest_id), "status": "running", "progress": 40,
                          "stage": "simulating", "error": None}),
        ]
        ids = [int(e.id) for e in got]
        assert ids == sorted(ids)
        assert not any(str(daves_run) in e.data or str(before_run) in e.data for e in stream.received)

        # Resume after the first: the two that followed, same ids.
        with SSEReader(f"{base}/api/v1/events/stream",
                       params={"ticket": ticket()}, headers={"Last-Event-ID": got[0].id}) as resumed:
            assert resumed.next("ready", timeout_s=15).json() == {"last_event_id": got[0].id}
            again = [resumed.next(timeout_s=15) for _ in range(2)]
        assert [(e.id, e.event, e.data) for e in again] == [(e.id, e.event, e.data) for e in got[1:]]
