"""Engine and sessions. SQLite file by default, PostgreSQL when ``DATABASE_URL`` says so.

Each process has one engine with one ``QueuePool``: ``DB_POOL_SIZE`` connections kept, up to
``DB_MAX_OVERFLOW`` more under load, and a checkout waits at most ``DB_POOL_TIMEOUT_S`` seconds before
raising ``sqlalchemy.exc.TimeoutError`` (the API answers it with 503, ``api/errors.py``). SQLite waits
``DB_SQLITE_BUSY_TIMEOUT_S`` for another process's write lock before ``database is locked``.

A forked child (Celery's prefork pool processes, forked again after one dies) starts with an empty pool:
the connections it inherited stay the parent's, never used by both (SQLAlchemy's "Using Connection Pools
with Multiprocessing or os.fork()": ``Engine.dispose(close=False)`` in the child). Two processes on one
PostgreSQL socket would interleave their statements and transactions, and share advisory locks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

from tradefleet.config import get_settings


def _normalise_url(url: str) -> str:
    # psycopg 3 is the PostgreSQL driver; accept the usual spellings of the URL.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


@lru_cache
def get_engine() -> Engine:
    """The process-wide SQLAlchemy engine for ``Settings.DATABASE_URL``."""
    settings = get_settings()
    url = _normalise_url(settings.DATABASE_URL)
    pool = {"pool_size": settings.DB_POOL_SIZE, "max_overflow": settings.DB_MAX_OVERFLOW,
            "pool_timeout": settings.DB_POOL_TIMEOUT_S}
    busy_s = settings.DB_SQLITE_BUSY_TIMEOUT_S
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        in_memory = not database or database == ":memory:"
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_s},
                               **({} if in_memory else pool))

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # pragma: no cover - driver hook
            cursor = dbapi_connection.cursor()
            # WAL lets the API read while a worker writes; foreign keys are off by default in SQLite.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_s * 1000)}")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **pool)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session for workers and the CLI; the caller commits, anything uncommitted is rolled back."""
    with Session(get_engine(), expire_on_commit=False) as session:
        yield session


def lock_for_write(session: Session) -> None:
    """Start the session's transaction with the write lock on SQLite (``BEGIN IMMEDIATE``), so that
    read-then-write sequences of concurrent workers serialise; PostgreSQL locks rows with
    ``SELECT ... FOR UPDATE`` instead and needs nothing here. Call before the first statement."""
    connection = session.connection()
    if connection.dialect.name == "sqlite" and not connection.connection.driver_connection.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _forget_inherited_connections() -> None:
    """In a forked child: a new pool for the cached engine, leaving the parent's connections open."""
    if get_engine.cache_info().currsize:
        get_engine().dispose(close=False)


os.register_at_fork(after_in_child=_forget_inherited_connections)


def reset_engine() -> None:
    """Forget the cached engine (tests switch databases)."""
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()
