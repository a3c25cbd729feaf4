"""Order leases: one process works on a live order at a time.

PostgreSQL: a session advisory lock on a dedicated connection, released by the server when the holder's
connection dies (e.g. on SIGKILL). SQLite: a process-local set (its embedded mode runs one worker process).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from tradefleet.db import get_engine

_local_leases: set[str] = set()
_local_guard = threading.Lock()


def _lease_key(client_order_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(client_order_id.encode(), digest_size=8).digest(), "big", signed=True)


@contextmanager
def order_lease(client_order_id: str) -> Iterator[bool]:
    """Yields True when this process may work on the order now, False when another holds it.

    PostgreSQL: ``pg_try_advisory_lock`` on a dedicated connection, held (outside any transaction)
    for the duration and released by the server if this process dies. SQLite: a process-local set."""
    engine = get_engine()
    if engine.dialect.name != "postgresql":
        with _local_guard:
            if client_order_id in _local_leases:
                got = False
            else:
                _local_leases.add(client_order_id)
                got = True
        try:
            yield got
        finally:
            if got:
                with _local_guard:
                    _local_leases.discard(client_order_id)
        return
    key = _lease_key(client_order_id)
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        got = bool(connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        try:
            yield got
        finally:
            if got:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})


__all__ = ["order_lease"]
