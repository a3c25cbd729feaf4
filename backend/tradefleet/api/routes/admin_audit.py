"""The audit log for admins (``GET /admin/audit``), and the dependency that records every admin request.

:func:`audit_admin_request` is attached by ``api/main.py`` to every router whose prefix starts with
``/admin`` (whoever writes it): each non-GET request an admin makes is recorded as ``admin.request``
with its method, path, outcome and status, after it ran. Routes record their own, more specific events
too (``user.role_changed``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from sqlmodel import Session

from tradefleet.api.deps import CurrentAdmin, SessionDep, get_current_admin
from tradefleet.db import get_engine
from tradefleet.errors import DomainError, validation_error
from tradefleet.models.audit import AuditEventPublic, AuditEventsPublic
from tradefleet.models.input_types import check_datetime
from tradefleet.services import audit

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(get_current_admin)])

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def audit_admin_request(request: Request, admin: CurrentAdmin, request_session: SessionDep) -> Iterator[None]:
    """Router dependency: after a non-GET admin request ran, record ``admin.request`` with
    ``detail = {method, path, outcome: "ok"|"error", status}`` (status of an error; the body is never
    stored). Written in its own session, so a failed request's rollback does not lose the record."""
    if request.method in SAFE_METHODS:
        yield
        return
    outcome, status = "ok", None
    try:
        yield
    except (HTTPException, DomainError) as exc:
        outcome, status = "error", exc.status_code
        raise
    except Exception:
        outcome, status = "error", 500
        raise
    finally:
        if outcome == "error":
            # The request's own session (the route's, shared through SessionDep) may still hold a write
            # lock (SQLite's BEGIN IMMEDIATE, PostgreSQL row locks) from before it failed: release it, or
            # the audit write below would wait for it.
            request_session.rollback()
        route = request.scope.get("route")
        with Session(get_engine()) as session:
            audit.record(session=session, actor=admin, action="admin.request", request=request,
                         target=("route", getattr(route, "path", request.url.path)),
                         detail={"method": request.method, "path": request.url.path,
                                 "outcome": outcome, "status": status})


def _aware(name: str, text: str | None) -> datetime | None:
    """``text`` as a timezone-aware datetime (ISO 8601, ``Z`` allowed); 422 naming ``query.<name>``."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise validation_error(f"query.{name}", "an ISO 8601 date and time, e.g. 2026-12-01T10:00:00Z") from None
    if value.tzinfo is None:
        raise validation_error(f"query.{name}", "give a timezone, e.g. 2026-12-01T10:00:00Z")
    try:
        return check_datetime(value)
    except ValueError as exc:
        raise validation_error(f"query.{name}", str(exc)) from None


@router.get("/audit", response_model=AuditEventsPublic)
def search_audit(
    session: SessionDep,
    actor: str | None = Query(None, max_length=255, description="user id, or part of the actor's e-mail"),
    action: str | None = Query(None, max_length=64, description="exact action, or a prefix ending in '.'"),
    q: str | None = Query(None, max_length=255, description="text in e-mail, action, target, IP, user agent"),
    # Strings parsed here, not `datetime` parameters: pydantic would also take a bare number as a Unix
    # time, which the schema (ISO 8601) does not allow.
    since_text: str | None = Query(None, alias="since", max_length=64, description="ISO 8601 with a zone; events at or after",
                                   json_schema_extra={"format": "date-time"}),
    until_text: str | None = Query(None, alias="until", max_length=64, description="ISO 8601 with a zone; events before",
                                   json_schema_extra={"format": "date-time"}),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> AuditEventsPublic:
    """Search the audit log, newest first: ``{data: [{id, at, actor_id, actor_email, action, target, ip,
    user_agent, detail}], count}`` (``count``: all matches). 422 for a time without a zone."""
    since, until = _aware("since", since_text), _aware("until", until_text)
    events, count = audit.search(session=session, actor=actor, action=action, q=q, since=since,
                                 until=until, limit=limit, offset=offset)
    return AuditEventsPublic(data=[AuditEventPublic.from_event(e) for e in events], count=count)
