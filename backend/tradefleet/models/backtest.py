"""Backtests requested through the API: the request, its progress, and its stored result.

A backtest is a row written by the API (status ``queued``) and filled in by the Celery task
``backtest.run`` (``running`` with a progress percentage, then ``done`` with the result or ``failed``
with a message). The result fields are written in one commit together with the final status, so a
reader sees either no result or all of it.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

from pydantic import ConfigDict
from sqlalchemy import BigInteger, Column, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy import Uuid as SAUuid
from sqlalchemy.orm import object_session
from sqlmodel import Field, SQLModel

from tradefleet.models._types import JSONType, dt_column, enum_column, utcnow
from tradefleet.models.input_types import BoundedDatetime, StrictFloat
from tradefleet.models.run import StrategyOnMarket
from tradefleet.models.strategy_version import version_number


class BacktestStatus(str, enum.Enum):
    """``queued`` until a worker takes it; ``running`` with ``progress``; then ``done`` (result stored)
    or ``failed`` (``error`` says why)."""

    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"


class BacktestBase(StrategyOnMarket):
    start: BoundedDatetime = Field(description="first candle's open time, ISO 8601 (UTC when no zone is given), "
                                   "years 2000..2999")
    end: BoundedDatetime = Field(description="end of the range, exclusive, ISO 8601 (UTC when no zone is given), "
                                 "years 2000..2999")
    stake: StrictFloat = Field(default=10_000.0, gt=0, le=1e12, description="starting balance, quote currency")


class BacktestCreate(BacktestBase):
    """Body of ``POST /api/v1/backtests``. ``fee``: taker rate per fill (0.001 = 0.1 %); default: the
    market's taker fee from the exchange's market catalog."""

    model_config = ConfigDict(extra="forbid")

    fee: StrictFloat | None = Field(default=None, ge=0, lt=1)


class Backtest(SQLModel, table=True):
    __table_args__ = (Index("ix_backtest_owner_created", "owner_id", "created_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = Field(
        sa_column=Column(SAUuid, ForeignKey("user.id", ondelete="CASCADE"), nullable=False)
    )
    strategy: str = Field(max_length=100)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    exchange: str = Field(max_length=50)
    symbol: str = Field(max_length=50)
    timeframe: str = Field(max_length=8)
    start: datetime = Field(sa_column=dt_column())
    end: datetime = Field(sa_column=dt_column())
    stake: float
    fee: float = Field(description="taker rate applied to every fill")
    status: BacktestStatus = Field(default=BacktestStatus.queued, sa_column=enum_column(BacktestStatus))
    progress: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    """Percent, 0-100, updated by the task at each stage."""
    stage: str | None = Field(default=None, sa_column=Column(String(40)))
    error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow, sa_column=dt_column())
    started_at: datetime | None = Field(default=None, sa_column=dt_column(nullable=True))
    finished_at: datetime | None = Field(default=None, sa_column=dt_column(nullable=True))
    # The result, written in one commit with status ``done``.
    candle_count: int | None = Field(default=None, sa_column=Column(Integer))
    """Candles in the tested range (the startup candles before it not counted)."""
    tested_start: datetime | None = Field(default=None, sa_column=dt_column(nullable=True))
    tested_end: datetime | None = Field(default=None, sa_column=dt_column(nullable=True))
    metrics: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType))
    trades: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSONType))
    equity: list[list[Any]] | None = Field(default=None, sa_column=Column(JSONType))
    """``[[time_ms, equity], ...]``, at most :data:`EQUITY_POINTS` points (downsampled)."""
    lookahead: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType))
    # The strategy version tested (pinned when the backtest is requested; NULL on older rows until
    # their first use).
    strategy_version_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(SAUuid, ForeignKey("strategy_version.id"), nullable=True, index=True))


EQUITY_POINTS = 2_000
"""The most points of an equity curve stored with a backtest."""


class BacktestPublic(BacktestBase):
    """A backtest without its heavy fields (trades, equity curve, look-ahead details): list items."""

    id: uuid.UUID
    status: BacktestStatus
    progress: int
    stage: str | None
    error: str | None
    fee: float
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    candle_count: int | None
    tested_start: datetime | None
    tested_end: datetime | None
    metrics: dict[str, Any] | None
    lookahead_flagged: bool | None
    strategy_version: int | None = None
    """The number of the pinned version (``strategy_version_id``)."""

    @classmethod
    def from_backtest(cls, backtest: Backtest) -> "BacktestPublic":
        data = backtest.model_dump(exclude={"trades", "equity", "lookahead"})
        data["strategy_version"] = version_number(object_session(backtest), backtest.strategy_version_id)
        data["lookahead_flagged"] = None if backtest.lookahead is None else bool(backtest.lookahead.get("flagged"))
        return cls.model_validate(data)


class BacktestDetail(BacktestPublic):
    """One backtest with its result: ``trades`` (as :class:`~tradefleet.backtest.BacktestResult`
    describes them), ``equity`` (``[[time_ms, equity], ...]``, at most 2,000 points) and
    ``lookahead`` (``flagged``, ``samples``, ``mismatches``). Result fields are ``None`` until ``done``."""

    trades: list[dict[str, Any]] | None
    equity: list[tuple[int, float]] | None
    lookahead: dict[str, Any] | None

    @classmethod
    def from_backtest(cls, backtest: Backtest) -> "BacktestDetail":
        data = BacktestPublic.from_backtest(backtest).model_dump()
        data.update(trades=backtest.trades, equity=backtest.equity, lookahead=backtest.lookahead)
        return cls.model_validate(data)


class BacktestsPublic(SQLModel):
    data: list[BacktestPublic]
    count: int


class BacktestDownload(SQLModel, table=True):
    """Candles one user's backtests were allowed to download on one UTC day: the count behind
    ``BACKTEST_DOWNLOAD_CANDLES_PER_DAY``. Charged when a backtest is requested, for the candles of its
    range not stored at that moment; one row per ``(owner_id, day)``."""

    __tablename__ = "backtest_download"

    owner_id: uuid.UUID = Field(
        sa_column=Column(SAUuid, ForeignKey("user.id", ondelete="CASCADE"), primary_key=True)
    )
    day: date = Field(sa_column=Column(Date, primary_key=True))
    candles: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
