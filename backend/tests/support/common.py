"""Constants and helpers shared by conftest.py and test modules (conftest itself is not importable
by name from every folder)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from cryptography.fernet import Fernet

from tradefleet.security.vault import KeyPair, generate_key_pair

CI = os.environ.get("CI", "").strip().lower() == "true"
DEFAULT_POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
TEST_JWT_SECRET = "test-jwt-secret-not-for-production-0123456789"
# The vault key pair and two-factor key of this test session, shared by the test process and the
# processes it starts (they inherit the environment; devstack.Stack gives the private key to Celery
# workers only).
TEST_VAULT_KEYS = generate_key_pair()
TEST_TOTP_KEY = Fernet.generate_key().decode()
# The per-user limits of the API, raised for every test that is not about them (tests of the limits
# set their own): the suite's own request floods must not be refused.
HIGH_USER_LIMITS = {"RATE_LIMIT_USER": "100000/minute", "RATE_LIMIT_ADMIN": "100000/minute",
                    "RATE_LIMIT_USER_HEAVY": "100000/minute", "USER_MAX_IN_FLIGHT": "1000",
                    "USER_MAX_IN_FLIGHT_HEAVY": "1000"}


def vault_settings(pair: KeyPair | None = None) -> dict[str, str]:
    """``VAULT_PUBLIC_KEYS`` and ``VAULT_PRIVATE_KEYS`` of ``pair`` (default: a new pair)."""
    pair = pair or generate_key_pair()
    return {"VAULT_PUBLIC_KEYS": pair.public, "VAULT_PRIVATE_KEYS": pair.private}


def unavailable(reason: str) -> None:
    """Skip the test because a service is missing, or fail it when ``CI=true`` (CI must run everything)."""
    if CI:
        pytest.fail(f"{reason} (CI=true: this service is required)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str, stack: Any, every_s: float = 0.3) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); fail if a process of
    ``stack`` exits or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stack.check_alive()
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


def recording(app: Any, seen: list[str]) -> Any:
    """An ASGI app that appends the path (and query) of every HTTP request to ``seen``, then serves
    it with ``app``: the simulator tests count what ccxt asked for."""

    async def wrapper(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http":
            query = scope.get("query_string", b"").decode()
            seen.append(scope["path"] + ("?" + query if query else ""))
        await app(scope, receive, send)

    return wrapper


STACK_DB_POOL = {"DB_POOL_SIZE": "3", "DB_MAX_OVERFLOW": "5"}
"""Each process of an end-to-end stack keeps at most 3 PostgreSQL connections and opens at most 5 more
under load: stacks of parallel pytest-xdist workers together stay within the server's ``max_connections``
(100 by default)."""


def stack_env(*, database_url: str, redis_url: str, sim_port: int, **extra: str) -> dict[str, str]:
    """The environment of an end-to-end test's processes: its database and Redis, binance pointed at
    the simulator on ``sim_port``, a random JWT secret, :data:`STACK_DB_POOL`, plus ``extra`` settings."""
    import secrets

    return {"ENVIRONMENT": "test", "DATABASE_URL": database_url, "REDIS_URL": redis_url,
            "EXCHANGE_API_URLS": f'{{"binance": "http://127.0.0.1:{sim_port}"}}',
            "JWT_SECRET_KEY": "e2e-" + secrets.token_hex(16), **HIGH_USER_LIMITS, **STACK_DB_POOL, **extra}


def nginx_binary() -> str:
    """The path of Debian's nginx (``make system-deps`` installs it); skipped without it (failed with
    ``CI=true``)."""
    import shutil

    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                           if os.access(p, os.X_OK)), None)
    if not found:
        unavailable("nginx is not installed (make system-deps installs it)")
    return found


@contextmanager
def scratch_postgres_database(prefix: str) -> Iterator[str]:
    """A new, empty (unmigrated) PostgreSQL database ``<prefix>_<random>`` on the test server
    (``TEST_POSTGRES_URL``), its URL yielded, dropped afterwards even with connections left open.
    Skipped without PostgreSQL (failed with ``CI=true``)."""
    import secrets

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.pool import NullPool

    server = make_url(os.environ.get("TEST_POSTGRES_URL") or DEFAULT_POSTGRES_SERVER).set(
        drivername="postgresql+psycopg")
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool,
                          connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        admin.dispose()
        unavailable(f"PostgreSQL unreachable: {exc.orig}")
    name = f"{prefix}_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
