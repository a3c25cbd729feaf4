"""Per-user quotas counted under a lock, so that racing requests cannot pass a limit.

A quota check is *count the owner's rows, refuse at the limit, insert*. Two requests that count at the same
moment would both see room and both insert; :func:`lock_owner` serialises them on the owner's ``user`` row
for the rest of the transaction (PostgreSQL: ``SELECT ... FOR UPDATE``; SQLite: the database write lock,
``BEGIN IMMEDIATE`` or, inside a transaction already begun, a no-op write to that row). Call it before the
count; the lock is released when the service commits or rolls back.
"""

from __future__ import annotations

import uuid

from sqlalchemy import update
from sqlmodel import Session, select

from tradefleet.db import lock_for_write
from tradefleet.models import User


def lock_owner(session: Session, owner_id: uuid.UUID) -> None:
    """Hold the owner's quota lock until the session's transaction ends (see the module docstring)."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        if not connection.connection.driver_connection.in_transaction:
            lock_for_write(session)
        else:
            session.execute(update(User).where(User.id == owner_id).values(id=User.id))
        return
    session.exec(select(User.id).where(User.id == owner_id).with_for_update()).one_or_none()


__all__ = ["lock_owner"]
