"""The browser's live updates and the admin's strategy switches.

``LiveEvent`` is the event log of the SSE fallback without Redis (embedded ``make run``: the worker and
the API are different processes, so a process-local queue cannot carry a tick's events to the stream);
with Redis the events go through Redis and this table stays empty. ``StrategySetting`` records the
strategies an admin has disabled.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Column, ForeignKey, Index, String
from sqlalchemy import Uuid as SAUuid
from sqlmodel import Field, SQLModel

from tradefleet.models._types import JSONType, dt_column, id_column, utcnow


class LiveEvent(SQLModel, table=True):
    """One event of a user's channel (kind ``candle``, ``order``, ``fill``, ``trade``, ``status``, ``log``,
    ``equity``, ``backtest``), kept for ``EVENTS_RETENTION_S`` so a stream can resume after a drop."""

    __tablename__ = "live_event"
    __table_args__ = (Index("ix_live_event_user_id", "user_id", "id"),)

    id: int | None = Field(default=None, sa_column=id_column())
    user_id: uuid.UUID = Field(sa_column=Column(SAUuid, ForeignKey("user.id", ondelete="CASCADE"), nullable=False))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=dt_column(index=True))


class StrategySetting(SQLModel, table=True):
    """An admin's switch for one strategy (by name). No row: enabled. A disabled strategy is hidden
    from the catalog and no new run or backtest can use it; runs already running keep running."""

    __tablename__ = "strategy_setting"
    name: str = Field(sa_column=Column(String(100), primary_key=True))
    enabled: bool = Field(sa_column=Column(Boolean, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=dt_column())
    updated_by: uuid.UUID | None = Field(
        default=None, sa_column=Column(SAUuid, ForeignKey("user.id", ondelete="SET NULL"), nullable=True))
