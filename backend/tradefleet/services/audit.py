"""The audit log: :func:`record` one event, :func:`search` them (``GET /admin/audit``).

Every team records through :func:`record`::

    audit.record(session=session, actor=user, action="run.started", target=run)
    audit.record(session=session, actor=user, action="exchange_key.added", target=account,
                 detail={"exchange": "binance", "fingerprint": fp})

Action names are ``<noun>.<past participle>``: ``auth.login``, ``auth.login_failed``, ``auth.locked``,
``auth.registered``, ``auth.email_verified``, ``auth.password_changed``, ``auth.password_change_failed``,
``auth.password_reset``, ``auth.2fa_setup_started``, ``auth.2fa_enabled``, ``auth.2fa_disabled``,
``auth.recovery_code_used``, ``auth.sessions_revoked``, ``run.started``, ``run.stopped``, ``run.killed``,
``exchange_account.add``, ``exchange_account.update``, ``exchange_account.delete``, ``user.role_changed``, ``admin.request`` (every non-GET admin request, from the admin routers'
dependency :func:`tradefleet.api.routes.admin_audit.audit_admin_request`).

IP and user agent come from ``request`` when given, else from the HTTP request being served (the
:class:`~tradefleet.api.middleware.SecurityMiddleware` puts them in :data:`request_meta`); outside a
request (workers, CLI) they are null.

``detail`` is JSON; values under keys that look like secrets (``password``, ``secret``, ``token``,
``api_key``, ``code``, ...) are replaced by ``"[redacted]"`` at any depth, so a careless caller cannot
write a secret into the log. Flags about secrets are not secrets: ``mfa`` (whether a sign-in used a second
factor) and ``recovery_remaining`` (unused recovery codes) are kept.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from tradefleet.models import User
from tradefleet.models.audit import AuditEvent


@dataclass(frozen=True)
class RequestMeta:
    """Who is on the other end of the HTTP request being served."""

    ip: str | None
    user_agent: str | None
    request_id: str | None = None


request_meta: ContextVar[RequestMeta | None] = ContextVar("tradefleet_audit_request_meta", default=None)
"""Set per HTTP request by the security middleware; read by :func:`record`."""

_SECRET_KEY = re.compile(r"pass|secret|token|api_?key|private|otp|totp|code|authorization|cookie",
                         re.IGNORECASE)
REDACTED = "[redacted]"
MAX_USER_AGENT = 512


def scrub(value: Any) -> Any:
    """``value`` with every entry under a secret-looking key replaced by ``"[redacted]"`` (any depth);
    non-JSON values become strings."""
    if isinstance(value, dict):
        return {str(k): (REDACTED if _SECRET_KEY.search(str(k)) else scrub(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _target(target: Any) -> tuple[str | None, str | None]:
    if target is None:
        return None, None
    if isinstance(target, tuple):
        kind, ident = target
        return str(kind), None if ident is None else str(ident)
    kind = getattr(target, "__tablename__", type(target).__name__.lower())
    return str(kind), str(getattr(target, "id", "")) or None


def _meta_of(request: Any) -> RequestMeta:
    from tradefleet.security.ratelimit import client_ip

    user_agent = request.headers.get("user-agent")
    request_id = request.scope.get("state", {}).get("request_id")
    return RequestMeta(ip=client_ip(request), user_agent=user_agent, request_id=request_id)


def record(*, session: Session, actor: User | None, action: str, target: Any = None, request: Any = None,
           detail: dict[str, Any] | None = None, actor_email: str | None = None,
           commit: bool = True) -> AuditEvent:
    """Append one event to the audit log and return it.

    ``actor``: the user who acted (None for an anonymous one; then ``actor_email`` may name the account
    they claimed, e.g. a failed login). ``action``: ``<noun>.<verb>`` (module docstring). ``target``: a
    table row (its table name and ``id``), a ``(type, id)`` pair, or None. ``request``: the Starlette
    request, else the one being served. ``detail``: JSON, scrubbed of secrets. ``commit=False`` leaves the
    commit to the caller, so the event and the action it records commit together.
    """
    meta = _meta_of(request) if request is not None else request_meta.get()
    target_type, target_id = _target(target)
    user_agent = meta.user_agent[:MAX_USER_AGENT] if meta and meta.user_agent else None
    body = scrub(dict(detail or {}))
    if meta and meta.request_id:
        body.setdefault("request_id", meta.request_id)
    event = AuditEvent(
        actor_id=actor.id if actor is not None else None,
        actor_email=(actor.email if actor is not None else actor_email),
        action=action[:64], target_type=target_type[:40] if target_type else None,
        target_id=target_id[:64] if target_id else None,
        ip=meta.ip[:45] if meta and meta.ip else None, user_agent=user_agent, detail=body,
    )
    session.add(event)
    if commit:
        session.commit()
        session.refresh(event)
    return event


def search(*, session: Session, actor: str | None = None, action: str | None = None, q: str | None = None,
           since: datetime | None = None, until: datetime | None = None, limit: int = 100,
           offset: int = 0) -> tuple[list[AuditEvent], int]:
    """Events newest first, and how many match.

    ``actor``: a user id (UUID) or a case-insensitive part of the actor's e-mail. ``action``: an exact
    action (``run.started``) or a prefix ending in a dot (``auth.``). ``q``: case-insensitive text in the
    e-mail, action, target, IP or user agent. ``since`` / ``until``: ``at >= since``, ``at < until``.
    """
    where = []
    if actor:
        try:
            where.append(AuditEvent.actor_id == uuid.UUID(actor))
        except ValueError:
            where.append(func.lower(col(AuditEvent.actor_email)).contains(actor.lower(), autoescape=True))
    if action:
        if action.endswith("."):
            where.append(col(AuditEvent.action).startswith(action, autoescape=True))
        else:
            where.append(AuditEvent.action == action)
    if q:
        needle = q.lower()
        where.append(or_(*[func.lower(col(c)).contains(needle, autoescape=True) for c in (
            AuditEvent.actor_email, AuditEvent.action, AuditEvent.target_type, AuditEvent.target_id,
            AuditEvent.ip, AuditEvent.user_agent)]))
    if since is not None:
        where.append(AuditEvent.at >= since)
    if until is not None:
        where.append(AuditEvent.at < until)
    count = session.exec(select(func.count()).select_from(AuditEvent).where(*where)).one()
    rows = session.exec(select(AuditEvent).where(*where)
                        .order_by(col(AuditEvent.at).desc(), col(AuditEvent.id).desc())
                        .offset(offset).limit(limit)).all()
    return list(rows), int(count)
