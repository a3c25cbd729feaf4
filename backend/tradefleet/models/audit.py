"""The audit log: one ``AuditEvent`` row per security-relevant action (sign-ins and failures, runs started,
stopped and killed, keys added and removed, role changes, every admin request). Written through
:func:`tradefleet.services.audit.record`, searched by admins at ``GET /admin/audit``.

Rows are never updated or deleted by the application. ``actor_id`` is not a foreign key: the trail of a
deleted user stays, with the e-mail they had.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, String, Text, Uuid
from sqlmodel import Field, SQLModel

from tradefleet.models._types import JSONType, dt_column, id_column, utcnow


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_actor_at", "actor_id", "at"),
        Index("ix_audit_event_action_at", "action", "at"),
    )

    id: int | None = Field(default=None, sa_column=id_column())
    at: datetime = Field(default_factory=utcnow, sa_column=dt_column(index=True))
    actor_id: uuid.UUID | None = Field(default=None, sa_column=Column(Uuid(), nullable=True))
    actor_email: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    action: str = Field(sa_column=Column(String(64), nullable=False))
    target_type: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))
    target_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    ip: str | None = Field(default=None, sa_column=Column(String(45), nullable=True))
    user_agent: str | None = Field(default=None, sa_column=Column(Text(), nullable=True))
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))


class AuditEventPublic(SQLModel):
    """One audit event as admins see it; ``target`` is ``"<type>:<id>"`` (``"run:9f0c..."``) or null."""

    id: int
    at: datetime
    actor_id: uuid.UUID | None
    actor_email: str | None
    action: str
    target: str | None
    ip: str | None
    user_agent: str | None
    detail: dict[str, Any]

    @classmethod
    def from_event(cls, event: AuditEvent) -> "AuditEventPublic":
        target = None
        if event.target_type:
            target = f"{event.target_type}:{event.target_id}" if event.target_id else event.target_type
        return cls(id=event.id, at=event.at, actor_id=event.actor_id, actor_email=event.actor_email,
                   action=event.action, target=target, ip=event.ip, user_agent=event.user_agent,
                   detail=event.detail or {})


class AuditEventsPublic(SQLModel):
    data: list[AuditEventPublic]
    count: int
