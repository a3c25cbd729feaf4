"""The live stream without Redis (the embedded ``make run``): events are rows of ``live_event`` written by
another process (here the test process plays the worker) and read by the API's stream. Real uvicorn on
a SQLite file, no Redis anywhere."""

from __future__ import annotations

import secrets
import subprocess
import uuid

import httpx
from sse_client import SSEReader
from testsupport import free_port

from tradefleet import events
from tradefleet.config import REPO_ROOT
from tradefleet.devstack import BIN, Stack


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
        events.publish(carol, "log", {"run_id": "before-the-stream"})  # before connecting: not replayed
        with SSEReader(f"{base}/api/v1/events/stream", params={"ticket": ticket()}) as stream:
            assert stream.status_code == 200 and stream.next("ready", timeout_s=15)
            run_id = str(uuid.uuid4())
            assert events.publish(dave, "status", {"run_id": "daves", "status": "running"}) == 1
            box = events.Outbox()
            box.add(carol, "status", {"run_id": run_id, "status": "running", "status_reason": None})
            box.add(carol, "equity", {"run_id": run_id, "candle_ms": 1, "equity": 10_000.5})
            box.add(carol, "backtest", {"backtest_id": "b1", "status": "running", "progress": 40})
            assert box.publish() == 3
            got = [stream.next(timeout_s=15) for _ in range(3)]
        assert [(e.event, e.json()) for e in got] == [
            ("status", {"run_id": run_id, "status": "running", "status_reason": None}),
            ("equity", {"run_id": run_id, "candle_ms": 1, "equity": 10_000.5}),
            ("backtest", {"backtest_id": "b1", "status": "running", "progress": 40}),
        ]
        ids = [int(e.id) for e in got]
        assert ids == sorted(ids)
        assert not any("daves" in e.data or "before-the-stream" in e.data for e in stream.received)

        # Resume after the first: the two that followed, same ids.
        with SSEReader(f"{base}/api/v1/events/stream",
                       params={"ticket": ticket()}, headers={"Last-Event-ID": got[0].id}) as resumed:
            assert resumed.next("ready", timeout_s=15).json() == {"last_event_id": got[0].id}
            again = [resumed.next(timeout_s=15) for _ in range(2)]
        assert [(e.id, e.event, e.data) for e in again] == [(e.id, e.event, e.data) for e in got[1:]]
