"""The live event stream end to end, with real processes: the exchange simulator, uvicorn, a Celery worker
and beat on PostgreSQL and Redis, read by an HTTP client the way a browser's EventSource reads it.

Two traders each run a paper strategy; each stream carries its owner's runs only. Tickets are single use;
a reconnect with ``last_event_id`` replays exactly what came after it.
"""

from __future__ import annotations

import subprocess

import httpx
from support.sse_client import SSEReader
from support.common import free_port, stack_env, wait_for

from tradefleet.config import REPO_ROOT
from tradefleet.devstack import BIN, Stack

RUN = {"strategy": "sma_cross", "params": {"fast": 3, "slow": 5}, "exchange": "binance", "symbol": "BTC/USDT",
       "timeframe": "1m", "mode": "paper", "stake": 10_000}


def _trader(base: str, email: str) -> httpx.Client:
    api = httpx.Client(base_url=f"{base}/api/v1", timeout=10)
    password = "correct horse battery"
    assert api.post("/auth/register", json={"email": email, "password": password}).status_code == 201
    token = api.post("/auth/login", data={"username": email, "password": password}).json()["access_token"]
    api.headers["Authorization"] = f"Bearer {token}"
    return api


def _open(base: str, api: httpx.Client, **params: str) -> SSEReader:
    ticket = api.post("/events/ticket")
    assert ticket.status_code == 200, ticket.text
    assert ticket.json()["expires_in"] > 0
    return SSEReader(f"{base}/api/v1/events/stream", params={"ticket": ticket.json()["ticket"], **params})


def test_each_trader_streams_their_own_runs_live_and_resumes(e2e_database, redis_url, tmp_path):
    sim_port, api_port = free_port(), free_port()
    env = stack_env(database_url=e2e_database, redis_url=redis_url, sim_port=sim_port, SCHEDULE_INTERVAL_S="0.5",
                    EVENTS_HEARTBEAT_S="1")
    with Stack(env=env, log_dir=tmp_path / "logs") as stack:
        subprocess.run([str(BIN / "tradefleet"), "migrate"], env=stack.full_env(), cwd=REPO_ROOT, check=True,
                       capture_output=True)
        stack.simulator(port=sim_port, speed=120)
        stack.worker(concurrency=2)
        stack.beat(schedule_file=tmp_path / "beat-schedule")
        base = stack.api(port=api_port)
        alice, bob = _trader(base, "alice@example.com"), _trader(base, "bob@example.com")

        # Tickets: required, single use, never an access token.
        assert httpx.post(f"{base}/api/v1/events/ticket").status_code == 401
        ticket = alice.post("/events/ticket").json()["ticket"]
        first = SSEReader(f"{base}/api/v1/events/stream", params={"ticket": ticket})
        assert first.status_code == 200
        assert first.response_headers["content-type"].startswith("text/event-stream")
        assert first.response_headers["x-accel-buffering"] == "no"
        assert first.response_headers["cache-control"] == "no-store"
        ready = first.next("ready", timeout_s=15)
        assert ready.retry == 3000 and ready.json() == {"last_event_id": None}
        first.close()
        reused = SSEReader(f"{base}/api/v1/events/stream", params={"ticket": ticket})
        assert reused.status_code == 401 and "already used" in reused.body
        access_token = alice.headers["Authorization"].split()[1]
        forged = SSEReader(f"{base}/api/v1/events/stream", params={"ticket": access_token})
        assert forged.status_code == 401 and "invalid ticket" in forged.body
        missing = httpx.get(f"{base}/api/v1/events/stream")
        assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "query.ticket"

        alice_stream, bob_stream = _open(base, alice), _open(base, bob)
        alice_stream.next("ready", timeout_s=15)
        bob_stream.next("ready", timeout_s=15)

        def create(api: httpx.Client):
            reply = api.post("/runs", json=RUN)  # 503 until the worker has loaded the market catalog
            assert reply.status_code in (201, 503), reply.text
            return reply.json() if reply.status_code == 201 else None

        alice_run = wait_for(lambda: create(alice), 60, "the market catalog", stack)["id"]
        bob_run = create(bob)["id"]
        assert alice.post(f"/runs/{alice_run}/start").status_code == 200
        assert bob.post(f"/runs/{bob_run}/start").status_code == 200

        # Alice's stream: her run's creation, start, then the engine's ticks, published after commit.
        created = alice_stream.next("log", timeout_s=30)
        assert created.json()["run_id"] == alice_run and created.json()["event"]["kind"] == "created"
        status = alice_stream.next("status", where=lambda e: e.json()["status"] == "running", timeout_s=30)
        assert status.json() == {"run_id": alice_run, "status": "running", "status_reason": None}
        candle = alice_stream.next("candle", timeout_s=120)
        assert candle.json()["run_id"] == alice_run
        assert {"time_ms", "open", "high", "low", "close", "volume"} <= set(candle.json())
        equity = alice_stream.next("equity", timeout_s=60)
        assert equity.json()["run_id"] == alice_run and equity.json()["candle_ms"] == candle.json()["time_ms"]
        assert equity.json()["equity"] > 0

        # Trading activity arrives as it happens: an order, its fill, the round trip it opens.
        fill = alice_stream.next("fill", timeout_s=180)
        assert fill.json()["run_id"] == alice_run and fill.json()["fill"]["side"] == "buy"
        orders = [e.json() for e in alice_stream.received if e.event == "order"]
        assert any(o["order"]["id"] == fill.json()["fill"]["order_id"] for o in orders)
        trade = alice_stream.next("trade", timeout_s=60)
        # The round trip the buy opened: open, or already closed when that tick caught up several candles
        # (its first runner start in the worker takes a moment) and sold within the same tick.
        assert trade.json()["run_id"] == alice_run and trade.json()["trade"]["status"] in ("open", "closed")
        trade_ids = [t["id"] for t in alice.get(f"/runs/{alice_run}/trades?include_open=true").json()]
        assert trade.json()["trade"]["id"] in trade_ids
        fills_api = alice.get(f"/runs/{alice_run}/fills").json()
        assert fill.json()["fill"] in fills_api  # the same row the API returns, id included

        # Resume: a new ticket and the id of an event already seen replays what followed it, in order.
        seen = [e for e in alice_stream.received if e.id is not None]
        assert len(seen) >= 5
        pivot = seen[1]
        with _open(base, alice, last_event_id=pivot.id) as resumed:
            assert resumed.next("ready", timeout_s=15).json() == {"last_event_id": pivot.id}
            replayed = [resumed.next(timeout_s=15) for _ in seen[2:]]
        assert [(e.id, e.event, e.data) for e in replayed] == [(e.id, e.event, e.data) for e in seen[2:]]

        # Stopping is published too (and the heartbeat kept the stream alive meanwhile).
        assert alice.post(f"/runs/{alice_run}/stop").status_code == 200
        stopped = alice_stream.next("status", where=lambda e: e.json()["status"] == "stopped", timeout_s=30)
        assert stopped.json()["run_id"] == alice_run
        assert any(c.startswith("ping") for c in alice_stream.comments)

        # Bob's stream carried Bob's run only.
        bob_stream.next("candle", timeout_s=60)
        alice_stream.close()
        bob_stream.close()
        for event in bob_stream.received:
            if event.event != "ready":
                assert event.json()["run_id"] == bob_run, event
        assert not any(alice_run in e.data for e in bob_stream.received)
        assert all(e.json()["run_id"] == alice_run for e in alice_stream.received if e.event != "ready")
