"""An admin's operations on every user's runs: find one, list them with their owner's e-mail, stop
and kill one. Keyword-only, session first. Stopping and killing are those of the run service
(:func:`tradefleet.services.runs.stop_run_row`, :func:`~tradefleet.services.runs.kill_run_row`) in
either mode, done ``by`` ``admin <e-mail>`` with the admin as the audited actor; they commit.

The caller checks that ``admin`` is an admin (the admin router's dependency does).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from tradefleet.db import lock_for_write
from tradefleet.errors import NotFoundError
from tradefleet.models import Run, RunStatus, User
from tradefleet.services import runs


def get_run_or_404(*, session: Session, run_id: uuid.UUID, lock: bool = False) -> Run:
    """Any user's run; 404 if it does not exist. ``lock`` takes its row (PostgreSQL) or the write lock
    (SQLite), as a tick may be writing it."""
    statement = select(Run).where(Run.id == run_id)
    if lock:
        lock_for_write(session)
        statement = statement.with_for_update()
    run = session.exec(statement).first()
    if run is None:
        raise NotFoundError("run not found")
    return run


def list_runs(*, session: Session, status: RunStatus | None = None, user: str | None = None,
              limit: int = 100, offset: int = 0) -> tuple[list[tuple[Run, str]], int]:
    """Every user's runs, newest first, with their owner's e-mail, and their total count; ``user``
    matches an owner id or part of an e-mail (case-insensitive)."""
    statement = select(Run, User.email).join(User, User.id == Run.owner_id)
    counting = select(func.count()).select_from(Run).join(User, User.id == Run.owner_id)
    filters: list[Any] = []
    if status is not None:
        filters.append(Run.status == status)
    if user:
        try:
            filters.append(Run.owner_id == uuid.UUID(user))
        except ValueError:
            filters.append(func.lower(User.email).contains(user.lower()))
    for f in filters:
        statement, counting = statement.where(f), counting.where(f)
    count = session.exec(counting).one()
    rows = session.exec(statement.order_by(Run.created_at.desc()).offset(offset).limit(limit)).all()
    return [(run, email) for run, email in rows], count


def owner_email(*, session: Session, run: Run) -> str:
    """The e-mail of the run's owner ("" if the owner no longer exists)."""
    owner = session.get(User, run.owner_id)
    return owner.email if owner else ""


def stop_run(*, session: Session, admin: User, run_id: uuid.UUID) -> Run:
    """Stop any user's run and cancel its open orders (its position is kept); a stopped run is returned
    unchanged. 404 if the run does not exist."""
    run = get_run_or_404(session=session, run_id=run_id, lock=True)
    return runs.stop_run_row(session=session, run=run, actor=admin, by=f"admin {admin.email}")


def kill_run(*, session: Session, admin: User, run_id: uuid.UUID) -> Run:
    """Kill any user's run: stop it, cancel its open orders, close its position at market. 404 if the
    run does not exist."""
    run = get_run_or_404(session=session, run_id=run_id, lock=True)
    return runs.kill_run_row(session=session, run=run, actor=admin, by=f"admin {admin.email}")
