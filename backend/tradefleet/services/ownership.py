"""Owner-scoped lookup: one row of a user's own, or a 404 that says nothing about anyone else's.

A row that exists but belongs to someone else answers exactly as one that does not exist
(:class:`~tradefleet.errors.NotFoundError`, ``"<what> not found"``), so ids cannot be probed.
"""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from sqlmodel import Session, select

from tradefleet.db import lock_for_write
from tradefleet.errors import NotFoundError

Row = TypeVar("Row")


def get_owned_or_404(*, session: Session, model: type[Row], row_id: uuid.UUID, owner_id: uuid.UUID, what: str,
                     owner_column: str = "owner_id", lock: bool = False, where: tuple[Any, ...] = ()) -> Row:
    """The ``model`` row with primary key ``row_id`` whose ``owner_column`` is ``owner_id`` (and that
    matches the extra ``where`` clauses); raises :class:`NotFoundError` (404, ``"<what> not found"``)
    otherwise. ``lock``: read it ``FOR UPDATE`` after taking the write lock (a tick or a task may be
    writing the row; on SQLite the lock is the database's)."""
    statement = select(model).where(model.id == row_id, getattr(model, owner_column) == owner_id, *where)
    if lock:
        lock_for_write(session)
        statement = statement.with_for_update()
    row = session.exec(statement).first()
    if row is None:
        raise NotFoundError(f"{what} not found")
    return row


__all__ = ["get_owned_or_404"]
