"""Platform bookkeeping: which workers are alive."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, String
from sqlmodel import Field, SQLModel

from tradefleet.models._types import dt_column, utcnow


class WorkerHeartbeat(SQLModel, table=True):
    """Written by every Celery worker every few seconds; the health check reads it."""

    __tablename__ = "worker_heartbeat"
    hostname: str = Field(sa_column=Column(String(255), primary_key=True))
    pid: int
    beat_at: datetime = Field(default_factory=utcnow, sa_column=dt_column())
