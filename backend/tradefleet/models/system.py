"""Platform bookkeeping: which workers are alive, and whether live trading is halted."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Column, String, Text
from sqlalchemy import Uuid as SAUuid
from pydantic import ConfigDict
from sqlmodel import Field, SQLModel

from tradefleet.models._types import dt_column, utcnow
from tradefleet.models.input_types import StrictBool, Text as TextStr


class WorkerHeartbeat(SQLModel, table=True):
    """Written by every Celery worker every few seconds; the health check reads it."""

    __tablename__ = "worker_heartbeat"
    hostname: str = Field(sa_column=Column(String(255), primary_key=True))
    pid: int
    beat_at: datetime = Field(default_factory=utcnow, sa_column=dt_column())


class TradingHalt(SQLModel, table=True):
    """The admin's global halt of live trading: one row, ``id = 1``. While ``halted``, no
    new live order is sent; runs keep their status and record a ``halted`` event on each tick.
    Read through :func:`tradefleet.execution.risk.get_halt` (cached)."""

    __tablename__ = "trading_halt"
    id: int = Field(default=1, primary_key=True)
    halted: bool = False
    reason: str | None = Field(default=None, sa_column=Column(Text))
    at: datetime = Field(default_factory=utcnow, sa_column=dt_column())
    by_user_id: uuid.UUID | None = Field(default=None, sa_column=Column(SAUuid, nullable=True))


class HaltPublic(SQLModel):
    """``GET/PUT /api/v1/admin/halt`` and ``GET /api/v1/trading/halt``: whether live trading is halted,
    why, and since when (UTC)."""

    halted: bool
    reason: str | None
    at: datetime | None


class HaltUpdate(SQLModel):
    """Body of ``PUT /api/v1/admin/halt``."""

    model_config = ConfigDict(extra="forbid")

    halted: StrictBool
    reason: TextStr | None = Field(default=None, max_length=500)
