"""A forked process never uses a database connection its parent opened (Celery's prefork pool forks
pool processes from a main process that has used the database, and forks new ones after one dies)."""

from __future__ import annotations

import json
import os

from sqlalchemy import text

from tradefleet.db import get_engine


def _backend_pid(engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_forked_child_opens_its_own_connections_and_leaves_the_parents_alone(db_url, settings_env):
    if not db_url.startswith("postgresql"):
        # SQLite files are opened per connection; the shared-socket hazard is PostgreSQL's.
        settings_env(DATABASE_URL=db_url)
        engine = get_engine()
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar_one() == 1
        return
    settings_env(DATABASE_URL=db_url, DB_POOL_SIZE="1", DB_MAX_OVERFLOW="0")
    engine = get_engine()
    parent_pid = _backend_pid(engine)  # the pool now holds one open connection
    assert engine.pool.checkedin() == 1

    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: report what its pool gives it, then leave without running atexit hooks
        try:
            result = {"checked_in": engine.pool.checkedin(), "backend_pid": _backend_pid(get_engine())}
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            result = {"error": repr(exc)}
        os.write(write, json.dumps(result).encode())
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(child, 0)
    with os.fdopen(read) as pipe:
        seen = json.loads(pipe.read())
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert "error" not in seen, seen
    # The child started with an empty pool and got a server session of its own ...
    assert seen["checked_in"] == 0
    assert seen["backend_pid"] != parent_pid
    # ... and the parent's connection is still the parent's, alive and in a clean state.
    assert _backend_pid(engine) == parent_pid
    with engine.begin() as connection:
        assert connection.execute(text("SELECT 41 + 1")).scalar_one() == 42
