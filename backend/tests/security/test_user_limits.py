"""Per-user limits and a busy database, through the real API.

In-flight slots (all requests and heavy ones) per user, rate limits per user (trader, admin, heavy
routes) on process memory and real Redis, fail-open when Redis is down, and 503 with ``Retry-After: 1``
(never 500) when a request cannot get a database connection from a real pool of size 1 held by another
session, or when SQLite stays locked by another writer.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from sqlmodel import Session

from tradefleet.db import get_engine
from tradefleet.models import Role, User
from tradefleet.security import ratelimit, user_limits
from tradefleet.security.user_limits import SLOTS, hold_slot
from support.common import free_port

API = "/api/v1"
ONE_DB = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
HEAVY = f"{API}/backtests/{uuid.uuid4()}/candles"  # a heavy route: 404 for a backtest that is not there


@pytest.fixture(params=["memory", "redis"])
def storage(request, settings_env):
    """The rate-limit storage under test: ``memory`` (no REDIS_URL) or ``redis`` (TEST_REDIS_URL)."""
    if request.param == "redis":
        request.getfixturevalue("redis_url")
    assert type(ratelimit.get_storage()).__name__ == ("RedisStorage" if request.param == "redis" else "MemoryStorage")
    return request.param


@pytest.fixture(autouse=True)
def _no_slots_left():
    SLOTS.clear()
    yield
    assert SLOTS.all == {} and SLOTS.heavy == {}, "a request kept its in-flight slot"


def _client(app, user: User, auth_headers) -> TestClient:
    return TestClient(app, headers=auth_headers(user), raise_server_exceptions=False)


def _assert_429(response, *, slots: bool = False) -> int:
    assert response.status_code == 429, response.text
    retry = int(response.headers["retry-after"])
    assert 1 <= retry <= 60
    detail = response.json()["detail"]
    assert "retry in" in detail
    if slots:
        assert "in progress" in detail and retry == 1
    return retry


def _assert_busy(response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"detail": "the database is busy, retry in 1 s"}


# --- in-flight slots -------------------------------------------------------------------------------


@ONE_DB
def test_heavy_slots_full_refuse_heavy_requests_only(db, app, make_user, auth_headers, settings_env):
    settings_env(USER_MAX_IN_FLIGHT=8, USER_MAX_IN_FLIGHT_HEAVY=2)
    user, _ = make_user()
    other, _ = make_user()
    with _client(app, user, auth_headers) as c, _client(app, other, auth_headers) as o:
        with hold_slot(user.id, heavy=True), hold_slot(user.id, heavy=True):
            _assert_429(c.get(HEAVY), slots=True)
            assert c.get(f"{API}/users/me").status_code == 200  # 2 of 8 ordinary slots in use
            assert o.get(HEAVY).status_code == 404  # another user's slots are their own
            assert SLOTS.in_flight(user.id) == (2, 2)
        assert c.get(HEAVY).status_code == 404  # released: served again
    assert SLOTS.in_flight(user.id) == (0, 0)


@ONE_DB
def test_all_slots_full_refuse_every_route_of_that_user(db, app, make_user, auth_headers, settings_env):
    settings_env(USER_MAX_IN_FLIGHT=3, USER_MAX_IN_FLIGHT_HEAVY=2)
    user, _ = make_user()
    other, _ = make_user()
    with _client(app, user, auth_headers) as c, _client(app, other, auth_headers) as o:
        with hold_slot(user.id, heavy=False), hold_slot(user.id, heavy=False), hold_slot(user.id, heavy=False):
            _assert_429(c.get(f"{API}/users/me"), slots=True)
            _assert_429(c.patch(f"{API}/users/me", json={"display_name": "changed"}), slots=True)
            assert o.get(f"{API}/users/me").status_code == 200
        with Session(get_engine()) as s:
            assert s.get(User, user.id).display_name is None  # the refused PATCH changed nothing
        assert c.get(f"{API}/users/me").status_code == 200


@ONE_DB
def test_slots_are_released_after_errors_and_invalid_tokens_take_none(db, app, make_user, auth_headers, settings_env):
    settings_env(USER_MAX_IN_FLIGHT=1, USER_MAX_IN_FLIGHT_HEAVY=1)
    user, _ = make_user()
    with _client(app, user, auth_headers) as c:
        for _ in range(5):  # one slot: each request must give it back, whatever its answer
            assert c.get(HEAVY).status_code == 404
            assert c.get(f"{API}/runs/not-a-uuid").status_code == 422
            assert c.get(f"{API}/users/me").status_code == 200
    with TestClient(app, headers={"Authorization": "Bearer forged.token.value"}) as anonymous:
        assert anonymous.get(f"{API}/users/me").status_code == 401
    assert SLOTS.all == {}


# --- rate limits -----------------------------------------------------------------------------------


@ONE_DB
def test_user_rate_limit_per_user(storage, db, app, make_user, auth_headers, settings_env):
    settings_env(RATE_LIMIT_USER="3/minute", RATE_LIMIT_ADMIN="5/minute", RATE_LIMIT_USER_HEAVY="100/minute")
    user, _ = make_user()
    other, _ = make_user()
    with _client(app, user, auth_headers) as c, _client(app, other, auth_headers) as o:
        for _ in range(3):
            assert c.get(f"{API}/users/me").status_code == 200
        _assert_429(c.get(f"{API}/users/me"))
        _assert_429(c.patch(f"{API}/users/me", json={"display_name": "over the limit"}))
        assert o.get(f"{API}/users/me").status_code == 200  # keyed by user, not by client IP
    with Session(get_engine()) as s:
        assert s.get(User, user.id).display_name is None


@ONE_DB
def test_admin_rate_limit(storage, db, app, make_user, auth_headers, settings_env):
    settings_env(RATE_LIMIT_USER="2/minute", RATE_LIMIT_ADMIN="5/minute")
    admin, _ = make_user(role=Role.admin)
    with _client(app, admin, auth_headers) as c:
        for _ in range(5):
            assert c.get(f"{API}/users/me").status_code == 200
        _assert_429(c.get(f"{API}/users/me"))


@ONE_DB
def test_heavy_rate_limit_on_top_of_the_user_limit(storage, db, app, make_user, auth_headers, settings_env):
    settings_env(RATE_LIMIT_USER="50/minute", RATE_LIMIT_USER_HEAVY="2/minute")
    user, _ = make_user()
    with _client(app, user, auth_headers) as c:
        assert c.get(HEAVY).status_code == 404
        assert c.get(f"{API}/runs/{uuid.uuid4()}/equity").status_code == 404
        _assert_429(c.get(HEAVY))
        _assert_429(c.get(f"{API}/runs/{uuid.uuid4()}/candles"))
        assert c.get(f"{API}/users/me").status_code == 200  # ordinary routes still answer


@ONE_DB
def test_rate_limits_fail_open_when_redis_is_down(db, app, make_user, auth_headers, settings_env, caplog, monkeypatch):
    # Nothing listens on this port: every counter operation fails to connect.
    settings_env(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", RATE_LIMIT_USER="1/minute",
                 RATE_LIMIT_USER_HEAVY="1/minute")
    monkeypatch.setattr(user_limits, "_last_failure_log", 0.0)
    user, _ = make_user()
    with caplog.at_level(logging.WARNING, logger="tradefleet.security.user_limits"), \
            _client(app, user, auth_headers) as c:
        for _ in range(4):
            assert c.get(f"{API}/users/me").status_code == 200
            assert c.get(HEAVY).status_code == 404
    failures = [r for r in caplog.records if "not enforced" in r.getMessage()]
    assert len(failures) == 1  # logged, but not once per request


# --- a busy database -------------------------------------------------------------------------------


def test_pool_timeout_answers_503_and_changes_nothing(db, app, make_user, auth_headers, settings_env):
    user, _ = make_user()
    settings_env(DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0, DB_POOL_TIMEOUT_S=0.3)
    engine = get_engine()
    assert engine.pool.size() == 1
    with _client(app, user, auth_headers) as c:
        with Session(engine) as holder:
            holder.get(User, user.id)  # the only connection of the pool, held by another session
            _assert_busy(c.get(f"{API}/users/me"))
            _assert_busy(c.patch(f"{API}/users/me", json={"display_name": "while busy"}))
            _assert_busy(c.get(HEAVY))
        assert c.get(f"{API}/users/me").status_code == 200  # the connection is back: served
    with Session(get_engine()) as s:
        assert s.get(User, user.id).display_name is None
    assert SLOTS.all == {}


@ONE_DB
def test_postgresql_at_its_connection_limit_answers_503_and_changes_nothing(db, app, make_user, auth_headers,
                                                                           settings_env):
    """A role limited to one connection (PostgreSQL's ``CONNECTION LIMIT``, refused with SQLSTATE 53300 like
    the server's ``max_connections``), that connection held elsewhere: the API answers 503, not 500."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    user, _ = make_user()
    url = make_url(str(get_engine().url))
    role = f"tf_limited_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 1'))
        conn.execute(text(f'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{role}"'))
        conn.execute(text(f'GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "{role}"'))
    limited = url.set(username=role, password=None).render_as_string(hide_password=False)
    try:
        settings_env(DATABASE_URL=limited, DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0)
        with _client(app, user, auth_headers) as c:
            assert c.get(f"{API}/users/me").status_code == 200  # the role can serve
            get_engine().dispose()
            holder = create_engine(limited, poolclass=NullPool).connect()  # the role's one connection
            try:
                _assert_busy(c.get(f"{API}/users/me"))
                _assert_busy(c.patch(f"{API}/users/me", json={"display_name": "while full"}))
            finally:
                holder.close()
            assert c.get(f"{API}/users/me").status_code == 200  # a slot is free again: served
        with Session(get_engine()) as s:
            assert s.get(User, user.id).display_name is None
    finally:
        get_engine().dispose()
        with admin.connect() as conn:
            conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"))
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
        admin.dispose()
    assert SLOTS.all == {}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlite_locked_by_another_writer_answers_503(db, app, make_user, auth_headers, settings_env):
    user, _ = make_user()
    settings_env(DB_SQLITE_BUSY_TIMEOUT_S=0.2)
    path = make_url(str(get_engine().url)).database
    writer = sqlite3.connect(path, timeout=0.2, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # another process's write transaction holds the write lock
        with _client(app, user, auth_headers) as c:
            _assert_busy(c.patch(f"{API}/users/me", json={"display_name": "while locked"}))
            assert c.get(f"{API}/users/me").status_code == 200  # WAL: readers are not blocked
        writer.execute("ROLLBACK")
    finally:
        writer.close()
    with Session(get_engine()) as s:
        assert s.get(User, user.id).display_name is None
