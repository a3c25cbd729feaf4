"""Fixtures for the whole suite.

Databases
    A test that requests ``db`` (directly or through ``session``, ``client``, ``make_user``, ``user_client``,
    ``admin_client``) runs twice, ``[sqlite]`` and ``[postgresql]``, through the parametrised ``db_url``.
    Each database is created and migrated with Alembic once per test session; every test starts with all
    tables empty. Tests that request none of these are not parametrised and never open a database.
    Only one backend: ``@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)``.

Settings
    Every test runs under test settings (autouse ``settings_env``): the developer's ``.env`` and any
    Tradefleet variables of the shell are ignored, ``ENVIRONMENT=test``, a test ``JWT_SECRET_KEY``, and a
    throw-away ``DATABASE_URL`` until ``db`` points it at a migrated database.

External services
    PostgreSQL (server from ``TEST_POSTGRES_URL``, default ``postgresql://postgres@127.0.0.1:5432/postgres``)
    and Redis (``TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/15``): when unreachable their tests are
    skipped, except with ``CI=true`` where they fail.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import MetaData, create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool
from sqlmodel import Session

from tradefleet.config import Settings, get_settings
from tradefleet.db import get_engine, reset_engine
from tradefleet.models import Role, User, UserCreate
from support.common import (DEFAULT_POSTGRES_SERVER, DEFAULT_REDIS_URL, HIGH_USER_LIMITS, TEST_JWT_SECRET, TEST_TOTP_KEY, TEST_VAULT_KEYS,
                         recording, scratch_postgres_database, unavailable, vault_settings)

if TYPE_CHECKING:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

# Plugins of the suite: figures in the terminal summary, and running under pytest-xdist.
pytest_plugins = ["support.figures", "support.parallel"]


def _reload_settings() -> None:
    get_settings.cache_clear()
    reset_engine()


def _test_env(database_url: str) -> dict[str, str | None]:
    """Every Settings variable unset, then the test baseline."""
    env: dict[str, str | None] = {name: None for name in Settings.model_fields}
    env.update(ENVIRONMENT="test", DATABASE_URL=database_url, JWT_SECRET_KEY=TEST_JWT_SECRET)
    env.update(TOTP_ENCRYPTION_KEY=TEST_TOTP_KEY, **vault_settings(TEST_VAULT_KEYS))
    env.update(HIGH_USER_LIMITS)
    return env


def _apply(mp: pytest.MonkeyPatch, values: dict[str, Any]) -> None:
    for name, value in values.items():
        if value is None:
            mp.delenv(name, raising=False)
        else:
            mp.setenv(name, str(value))


# --- settings ------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def settings_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Settings]]:
    """Test settings for every test (autouse); the value is ``set_env(**vars) -> Settings``.

    Before the test: ``.env`` files are ignored, every Settings variable is removed from the environment,
    then ``ENVIRONMENT=test``, ``JWT_SECRET_KEY=<test secret>`` and ``DATABASE_URL=<an unmigrated SQLite
    file>`` are set (request ``db`` for a real database). ``STRATEGIES_DIR`` and the rest keep their
    defaults. ``set_env(NAME=value, OTHER=None)`` sets (``None``: unsets) variables, clears the
    ``get_settings`` cache and resets the engine, and returns the new Settings::

        def test_short_tokens(settings_env):
            settings_env(ACCESS_TOKEN_EXPIRE_MINUTES=1)

    Everything is restored after the test.
    """
    mp = pytest.MonkeyPatch()
    placeholder = tmp_path_factory.getbasetemp() / "no-database-requested.db"

    def set_env(**values: Any) -> Settings:
        _apply(mp, values)
        _reload_settings()
        return get_settings()

    mp.setitem(Settings.model_config, "env_file", None)
    set_env(**_test_env(f"sqlite:///{placeholder}"))
    try:
        yield set_env
    finally:
        mp.undo()
        _reload_settings()


@pytest.fixture(autouse=True)
def _fresh_rate_limits(settings_env: Callable[..., Settings]) -> Iterator[None]:
    """Every test starts with empty rate-limit and lockout counters (a new in-memory storage;
    the ``redis_url`` fixture flushes its Redis database)."""
    from tradefleet.security import ratelimit

    ratelimit._storage_for.cache_clear()
    yield
    ratelimit._storage_for.cache_clear()


# --- databases -----------------------------------------------------------------------------------


@contextmanager
def _settings_for(database_url: str) -> Iterator[None]:
    """Test settings pointing at ``database_url`` for code run outside a test (session fixtures)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(Settings.model_config, "env_file", None)
        _apply(mp, _test_env(database_url))
        _reload_settings()
        try:
            yield
        finally:
            reset_engine()
    _reload_settings()


def _migrate(database_url: str) -> None:
    from tradefleet.migrations import upgrade

    with _settings_for(database_url):
        upgrade()


@pytest.fixture(scope="session")
def _sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """URL of a SQLite file migrated to head, for the whole test session."""
    path = tmp_path_factory.mktemp("sqlite") / "tradefleet-test.db"
    url = f"sqlite:///{path}"
    _migrate(url)
    return url


@pytest.fixture(scope="session")
def _postgresql_database() -> Iterator[str]:
    """URL of a fresh PostgreSQL database ``tradefleet_test_<random>``, migrated to head, dropped at the end."""
    server = make_url(os.environ.get("TEST_POSTGRES_URL") or DEFAULT_POSTGRES_SERVER)
    server = server.set(drivername="postgresql+psycopg")
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool,
                          connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        admin.dispose()
        unavailable(f"PostgreSQL unreachable at {server.render_as_string(hide_password=True)}: "
                    f"{str(exc.orig).strip()}")
    name = f"tradefleet_test_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = server.set(database=name).render_as_string(hide_password=False)
        _migrate(url)
        yield url
    finally:
        reset_engine()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """URL of a migrated database of each backend in turn (the parameter every DB test runs under).

    The databases are created lazily: a run of SQLite-only tests never connects to PostgreSQL.
    Prefer ``db``, which also configures the settings and empties the tables.
    """
    return request.getfixturevalue(f"_{request.param}_database")


_TABLES: dict[str, list[str]] = {}


def _empty_tables(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    if url not in _TABLES:
        # Reflect the migrated schema (not SQLModel.metadata): tables a migration adds are emptied too.
        metadata = MetaData()
        metadata.reflect(bind=engine)
        _TABLES[url] = [t.name for t in metadata.sorted_tables if t.name != "alembic_version"]
    names = _TABLES[url]
    if not names:
        return
    quote = engine.dialect.identifier_preparer.quote
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(map(quote, names))} RESTART IDENTITY CASCADE"))
        else:
            for name in reversed(names):  # children before parents: foreign keys are enforced
                conn.execute(text(f"DELETE FROM {quote(name)}"))


@pytest.fixture
def db(db_url: str, settings_env: Callable[..., Settings]) -> Engine:
    """The database under test (SQLite, then PostgreSQL), empty, and set as ``DATABASE_URL``.

    Returns ``tradefleet.db.get_engine()`` for it: the application code under test uses the same engine.
    """
    settings_env(DATABASE_URL=db_url)
    engine = get_engine()
    _empty_tables(engine)
    return engine


@pytest.fixture
def session(db: Engine) -> Iterator[Session]:
    """A SQLModel Session on the database under test, closed after the test.

    Rows the API writes are committed by another session: call ``session.expire_all()`` (or query again)
    before reading objects this session already loaded.
    """
    with Session(db) as s:
        yield s


# --- users and the API ---------------------------------------------------------------------------


@pytest.fixture
def make_user(session: Session) -> Callable[..., tuple[User, str]]:
    """Factory ``make_user(email=None, password=None, role=Role.trader, *, is_active=True,
    is_verified=False) -> (User, password)``, committed through ``services.users.create_user``.

    Defaults: a unique ``user-<hex>@example.com`` and a random valid password (returned in clear).
    """
    from tradefleet.services.users import create_user

    def make(email: str | None = None, password: str | None = None, role: Role = Role.trader, *,
             is_active: bool = True, is_verified: bool = False) -> tuple[User, str]:
        email = email or f"user-{uuid.uuid4().hex[:12]}@example.com"
        password = password or f"pw-{secrets.token_urlsafe(12)}"
        user = create_user(session=session, user_in=UserCreate(email=email, password=password),
                           role=role, is_verified=is_verified)
        if not is_active:
            user.is_active = False
            session.add(user)
            session.commit()
            session.refresh(user)
        return user, password

    return make


@pytest.fixture
def auth_headers() -> Callable[[User], dict[str, str]]:
    """``auth_headers(user) -> {"Authorization": "Bearer <access token>"}``, signed with the test secret.

    Needs no database (the token only carries ``user.id``).
    """
    from tradefleet.security.tokens import create_access_token

    def headers(user: User) -> dict[str, str]:
        return {"Authorization": f"Bearer {create_access_token(user.id, token_version=user.token_version)}"}

    return headers


@pytest.fixture
def app() -> FastAPI:
    """A fresh application from ``create_app()`` under the test settings (no database needed to build it)."""
    from tradefleet.api.main import create_app

    return create_app()


@pytest.fixture
def client(db: Engine, app: FastAPI) -> Iterator[TestClient]:
    """An anonymous ``TestClient`` on ``app`` over the database under test.

    Server exceptions are re-raised in the test (``raise_server_exceptions=True``); to see the 500 reply
    build ``TestClient(app, raise_server_exceptions=False)``.
    """
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


def _logged_in_client(app: FastAPI, user: User, password: str,
                      headers: dict[str, str]) -> Iterator[TestClient]:
    from fastapi.testclient import TestClient

    with TestClient(app, headers=headers) as c:
        c.user = user  # type: ignore[attr-defined]
        c.password = password  # type: ignore[attr-defined]
        yield c


@pytest.fixture
def user_client(db: Engine, app: FastAPI, make_user, auth_headers) -> Iterator[TestClient]:
    """A ``TestClient`` signed in as a fresh active trader; ``user_client.user`` and ``.password`` say who."""
    user, password = make_user()
    yield from _logged_in_client(app, user, password, auth_headers(user))


@pytest.fixture
def admin_client(db: Engine, app: FastAPI, make_user, auth_headers) -> Iterator[TestClient]:
    """Like ``user_client``, signed in as a fresh admin."""
    user, password = make_user(role=Role.admin)
    yield from _logged_in_client(app, user, password, auth_headers(user))


# --- redis ---------------------------------------------------------------------------------------


@pytest.fixture
def redis_url(settings_env: Callable[..., Settings]) -> Iterator[str]:
    """URL of Redis database 15 (``TEST_REDIS_URL`` overrides; each pytest-xdist worker has its own,
    ``support.parallel``), flushed before and after the test and set as ``REDIS_URL``. Skipped when Redis
    is unreachable (failed with ``CI=true``)."""
    import redis

    url = os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS_URL
    conn = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        conn.ping()
    except redis.RedisError as exc:
        conn.close()
        unavailable(f"Redis unreachable at {url}: {exc}")
    conn.flushdb()
    settings_env(REDIS_URL=url)
    try:
        yield url
    finally:
        conn.flushdb()
        conn.close()


# --- the exchange simulator ----------------------------------------------------------------------

SIM_T0 = 1704067200000
"""2024-01-01 00:00 UTC: the first recorded candle of every file."""


@dataclass
class SimServer:
    """A running simulator: its base URL, its clock (frozen unless a test sets a speed), and the
    path and query of every request it received (cleared per test)."""

    base_url: str
    clock: Any
    requests: list[str]

    def klines_requests(self) -> list[str]:
        return [r for r in self.requests if r.startswith("/api/v3/klines")]


@pytest.fixture(scope="session")
def _sim_server() -> Iterator[SimServer]:
    from tradefleet.sim import DEFAULT_DATA_DIR, BackgroundServer, SimClock, create_app, load_market_data

    clock = SimClock(SIM_T0, speed=0)
    app = create_app(data=load_market_data(DEFAULT_DATA_DIR), clock=clock)
    seen: list[str] = []

    with BackgroundServer(recording(app, seen)) as server:
        yield SimServer(base_url=server.base_url, clock=clock, requests=seen)


@pytest.fixture
def exchange_sim(_sim_server: SimServer, settings_env: Callable[..., Settings]) -> Iterator[SimServer]:
    """The session's exchange simulator, its clock frozen at :data:`SIM_T0`, with ``EXCHANGE_API_URLS``
    pointing ccxt's binance at it and the per-process ccxt and cache singletons reset."""
    from tradefleet.cache import get_cache
    from tradefleet.market.candles import public_exchange

    _sim_server.clock.set_speed(0)
    _sim_server.clock.set(SIM_T0)
    _sim_server.requests.clear()
    settings_env(EXCHANGE_API_URLS=f'{{"binance": "{_sim_server.base_url}"}}')
    public_exchange.cache_clear()
    get_cache.cache_clear()
    yield _sim_server
    public_exchange.cache_clear()
    get_cache.cache_clear()


@pytest.fixture
def market_catalog(db: Engine, exchange_sim: SimServer) -> SimServer:
    """The binance market catalog loaded from the simulator through ccxt into ``exchange_market``."""
    from tradefleet.db import session_scope
    from tradefleet.market.catalog import refresh_catalog

    with session_scope() as s:
        refresh_catalog(session=s, exchange_id="binance")
    return exchange_sim


@pytest.fixture
def e2e_database() -> Iterator[str]:
    """A fresh, empty (unmigrated) PostgreSQL database for the real processes of an end-to-end test,
    dropped afterwards. Skipped without PostgreSQL (failed with ``CI=true``)."""
    with scratch_postgres_database("tradefleet_e2e") as url:
        yield url


# --- e-mail ----------------------------------------------------------------------------------


@dataclass
class MailOutbox:
    """Mails the code under test enqueued (``to``, ``template``, ``context``), in order. In-process tests
    have no worker: the broker hop is replaced, and the real Celery tasks run eagerly (``Task.apply``),
    so with ``smtp_server`` each mail really goes over SMTP, through the ``emails`` package."""

    sent: list[tuple[str, str, dict]]

    def of(self, template: str) -> list[tuple[str, str, dict]]:
        return [m for m in self.sent if m[1] == template]


@pytest.fixture(autouse=True)
def outbox(monkeypatch: pytest.MonkeyPatch) -> MailOutbox:
    """Autouse: the broker seam of e-mails and password-reset requests (nothing reaches a broker in
    in-process tests). Each mail is recorded, then the ``email.send`` task runs eagerly: it writes the
    mail to the log without ``SMTP_HOST`` and sends it with ``smtp_server``."""
    import tradefleet.emails as mail
    from tradefleet.services import auth

    box = MailOutbox(sent=[])

    def enqueue_email(to: str, template: str, context: dict) -> None:
        from tradefleet.worker.email_tasks import send_email

        box.sent.append((to, template, context))
        result = send_email.apply(args=[to, template, context])
        if result.failed():
            import logging
            logging.getLogger("tests.outbox").error("email.send failed: %r", result.result)

    def enqueue_reset_request(email: str) -> None:
        from tradefleet.worker.email_tasks import password_reset_request

        password_reset_request.apply(args=[email]).get()

    monkeypatch.setattr(mail, "enqueue_email", enqueue_email)
    monkeypatch.setattr(auth, "enqueue_reset_request", enqueue_reset_request)
    return box


@dataclass
class SmtpServer:
    """A real SMTP server (aiosmtpd) on 127.0.0.1: the messages it accepted (parsed), and a knob to
    answer the next ``reject_next`` DATA commands with a temporary failure (451)."""

    host: str
    port: int
    messages: list[Any]
    attempts: int = 0
    reject_next: int = 0


@pytest.fixture(scope="session")
def _smtp_server() -> Iterator[SmtpServer]:
    from email import message_from_bytes, policy

    from aiosmtpd.controller import Controller
    from support.common import free_port

    state = SmtpServer(host="127.0.0.1", port=free_port(), messages=[])

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ARG002
            state.attempts += 1
            if state.reject_next > 0:
                state.reject_next -= 1
                return "451 4.3.0 try again later"
            message = message_from_bytes(envelope.content, policy=policy.default)
            message.envelope_rcpt = list(envelope.rcpt_tos)
            state.messages.append(message)
            return "250 OK"

    controller = Controller(Handler(), hostname=state.host, port=state.port)
    controller.start()
    try:
        yield state
    finally:
        controller.stop()


@pytest.fixture
def smtp_server(_smtp_server: SmtpServer, settings_env: Callable[..., Settings]) -> SmtpServer:
    """The loopback SMTP server, emptied, with ``SMTP_HOST``/``SMTP_PORT`` pointing at it (no TLS)."""
    _smtp_server.messages.clear()
    _smtp_server.attempts = 0
    _smtp_server.reject_next = 0
    settings_env(SMTP_HOST=_smtp_server.host, SMTP_PORT=_smtp_server.port, SMTP_TLS="false",
                 EMAILS_FROM_EMAIL="noreply@tradefleet.test")
    return _smtp_server
