"""Event streams as an attacker would use them: many at once, and one kept after the password changed.

Real uvicorn processes (two, sharing Redis, as behind a load balancer) on PostgreSQL; streams read by an
HTTP client the way a browser's EventSource reads them. A user holds at most ``STREAM_MAX_PER_USER``
streams, however they are opened; a closed stream gives its slot back; a stream ends as soon as its user's
``token_version`` changes and delivers nothing published after.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis
from support.sse_client import SSEReader
from support.common import free_port, stack_env

from tradefleet import stream_slots
from tradefleet.config import REPO_ROOT
from tradefleet.devstack import BIN, Stack
from tradefleet.events.outbox import publish
from tradefleet.events.updates import LogUpdate

PASSWORD = "correct horse battery"


def _trader(base: str, email: str) -> tuple[httpx.Client, uuid.UUID]:
    api = httpx.Client(base_url=f"{base}/api/v1", timeout=20)
    assert api.post("/auth/register", json={"email": email, "password": PASSWORD}).status_code == 201
    token = api.post("/auth/login", data={"username": email, "password": PASSWORD}).json()["access_token"]
    api.headers["Authorization"] = f"Bearer {token}"
    return api, uuid.UUID(api.get("/users/me").json()["id"])


@pytest.fixture
def two_apis(e2e_database, redis_url, tmp_path, settings_env):
    """Two API processes on one database and one Redis; heartbeats and session checks every 30 s, so a
    stream that ends sooner was ended by the pushed session change, not by a poll."""
    env = stack_env(database_url=e2e_database, redis_url=redis_url, sim_port=free_port(),
                    EVENTS_HEARTBEAT_S="30", EVENTS_SESSION_CHECK_S="30")
    with Stack(env=env, log_dir=tmp_path / "logs") as stack:
        subprocess.run([str(BIN / "tradefleet"), "migrate"], env=stack.full_env(), cwd=REPO_ROOT, check=True,
                       capture_output=True)
        first = stack.api(port=free_port())
        port = free_port()
        stack.spawn("api2", str(BIN / "uvicorn"), "tradefleet.api.main:app", "--host", "127.0.0.1",
                    "--port", str(port), "--no-access-log", "--no-proxy-headers")
        second = f"http://127.0.0.1:{port}"
        stack.wait_http(f"{second}/api/v1/health")
        # This process publishes as a worker would: same database and Redis.
        settings_env(DATABASE_URL=e2e_database, REDIS_URL=redis_url)
        yield first, second, redis.Redis.from_url(redis_url)


def _log(message: str) -> LogUpdate:
    """A strategy log line of a run of its own."""
    return LogUpdate.of(uuid.uuid4(), dict(id=1, created_at="2026-01-02T03:04:05+00:00", candle_ms=None,
                                            level="info", kind="log", message=message, data={}))


def _open(base: str, ticket: str) -> SSEReader:
    return SSEReader(f"{base}/api/v1/events/stream", params={"ticket": ticket})


def test_parallel_opens_on_two_api_processes_hold_at_most_the_limit(two_apis):
    first, second, conn = two_apis
    limit = 10  # the default STREAM_MAX_PER_USER
    alice, alice_id = _trader(first, "alice@example.com")
    bob, _ = _trader(first, "bob@example.com")
    tickets = [alice.post("/events/ticket").json()["ticket"] for _ in range(30)]

    with ThreadPoolExecutor(max_workers=30) as pool:
        streams = list(pool.map(lambda i: _open((first, second)[i % 2], tickets[i]), range(30)))
    try:
        opened = [s for s in streams if s.status_code == 200]
        refused = [s for s in streams if s.status_code != 200]
        assert len(opened) == limit, [s.status_code for s in streams]
        assert {s.status_code for s in refused} == {429}
        assert all("STREAM_MAX_PER_USER" in s.body and f"at most {limit}" in s.body for s in refused)
        for stream in opened:
            stream.next("ready", timeout_s=15)
        # Nothing beyond the limit is held; no more tickets while at it; another user is unaffected.
        assert conn.zcard(stream_slots.slots_key(alice_id)) == limit
        more = alice.post("/events/ticket")
        assert more.status_code == 429 and "STREAM_MAX_PER_USER" in more.json()["detail"]
        with _open(second, bob.post("/events/ticket").json()["ticket"]) as bobs:
            assert bobs.status_code == 200 and bobs.next("ready", timeout_s=15)

        # A closed stream gives its slot back: one more opens, the next is refused again.
        opened.pop().close()
        # Noticed at once, or at the latest at the next heartbeat write (30 s) on a loaded machine.
        deadline = time.monotonic() + 60
        while conn.zcard(stream_slots.slots_key(alice_id)) >= limit and time.monotonic() < deadline:
            time.sleep(0.1)
        assert conn.zcard(stream_slots.slots_key(alice_id)) == limit - 1
        again = _open(first, alice.post("/events/ticket").json()["ticket"])
        opened.append(again)
        assert again.status_code == 200 and again.next("ready", timeout_s=15)
        assert alice.post("/events/ticket").status_code == 429
    finally:
        for stream in streams:
            stream.close()
        for stream in opened:
            stream.close()


def test_password_change_ends_the_stream_and_nothing_after_is_delivered(two_apis):
    first, second, conn = two_apis
    alice, alice_id = _trader(first, "carol@example.com")
    spare_ticket = alice.post("/events/ticket").json()["ticket"]  # issued before the change
    stream = _open(second, alice.post("/events/ticket").json()["ticket"])
    try:
        assert stream.status_code == 200 and stream.next("ready", timeout_s=15)
        before, after = _log("before"), _log("after")
        assert publish(alice_id, before) == 1
        assert stream.next("log", timeout_s=15).json() == before.to_json()

        changed = alice.post("/users/me/password", json={"current_password": PASSWORD,
                                                          "new_password": "another horse battery"})
        assert changed.status_code == 204
        assert publish(alice_id, after) == 1
        # The stream ends (well before its 30 s check), having delivered nothing published after.
        with pytest.raises(AssertionError, match="ended"):
            stream.next("log", timeout_s=20)
        assert [e.json() for e in stream.received if e.event == "log"] == [before.to_json()]
        assert not any(e.event == "session" for e in stream.received)
    finally:
        stream.close()
    # Its slot is free, and a ticket issued before the change opens nothing.
    deadline = time.monotonic() + 15
    while conn.zcard(stream_slots.slots_key(alice_id)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert conn.zcard(stream_slots.slots_key(alice_id)) == 0
    with _open(first, spare_ticket) as old:
        assert old.status_code == 401
    assert conn.zcard(stream_slots.slots_key(alice_id)) == 0


def test_a_dead_streams_slot_expires_with_its_lease(redis_url):
    user = uuid.uuid4()
    held = [stream_slots.acquire(user, lease=1.0) for _ in range(10)]
    with pytest.raises(stream_slots.StreamLimitReached, match="STREAM_MAX_PER_USER"):
        stream_slots.acquire(user, lease=1.0)
    assert held[0].renew()  # a live stream renews its lease, and stays counted
    assert stream_slots.open_count(user) == 10
    time.sleep(1.3)  # their process died: nothing renewed or released them
    assert stream_slots.open_count(user) == 0
    assert len([stream_slots.acquire(user) for _ in range(10)]) == 10


@pytest.mark.parametrize("with_redis", [True, False], ids=["redis", "in-process"])
def test_parallel_acquires_never_pass_the_limit(with_redis, settings_env, request):
    if with_redis:
        request.getfixturevalue("redis_url")
    else:
        settings_env(REDIS_URL=None)
    user = uuid.uuid4()
    results: list[object] = []
    guard = threading.Lock()
    start = threading.Barrier(60)

    def take() -> None:
        start.wait()
        try:
            slot: object = stream_slots.acquire(user)
        except stream_slots.StreamLimitReached as exc:
            slot = exc
        with guard:
            results.append(slot)

    threads = [threading.Thread(target=take) for _ in range(60)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    slots = [r for r in results if isinstance(r, stream_slots.StreamSlot)]
    assert len(slots) == 10 and len(results) == 60
    assert stream_slots.open_count(user) == 10
    for slot in slots:
        slot.release()
    assert stream_slots.open_count(user) == 0
