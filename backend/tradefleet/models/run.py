"""Strategy runs and what they record each tick: events and equity snapshots.

A run is a row, not a process (DESIGN.md section 3): its wallet and position live in these columns
and the fleet engine updates them once per closed candle.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any, ClassVar

from pydantic import ConfigDict, field_validator
from sqlalchemy import Column, Float, ForeignKey, Index, Text, UniqueConstraint
from sqlalchemy import Uuid as SAUuid
from sqlalchemy.orm import object_session
from sqlmodel import Field, SQLModel


from tradefleet.models._types import enum_column, id_column, JSONType, dt_column, ms_column, utcnow
from tradefleet.models.input_types import Label, StrictFloat
from tradefleet.models.strategy_version import version_number


class RunMode(str, enum.Enum):
    paper = "paper"
    live = "live"


class RunStatus(str, enum.Enum):
    """``created`` until started; ``running`` while the engine ticks it; ``paused`` by the platform
    (strategy error, exchange error) with a reason; ``stopped`` by its owner."""

    created = "created"
    running = "running"
    paused = "paused"
    stopped = "stopped"

    ACTIVE: ClassVar[tuple["RunStatus", ...]]
    """The statuses of an active run (``created``, ``running``, ``paused``): every status but ``stopped``.
    ``MAX_RUNS_PER_USER`` counts them and the trader's kill switch stops them."""


RunStatus.ACTIVE = (RunStatus.created, RunStatus.running, RunStatus.paused)


class StrategyOnMarket(SQLModel):
    """A strategy with its parameters on one market: what runs and backtests share."""

    strategy: Label = Field(min_length=1, max_length=100)
    params: dict[str, Any] = Field(default_factory=dict)
    exchange: Label = Field(default="binance", min_length=1, max_length=50)
    symbol: Label = Field(min_length=3, max_length=50, description="ccxt unified symbol, e.g. BTC/USDT")
    timeframe: Label = Field(min_length=2, max_length=8, description="ccxt timeframe, e.g. 1m, 1h")
    strategy_version_id: uuid.UUID | None = Field(
        default=None, description="an approved version of ``strategy``; default: its latest approved version")

    @field_validator("params", mode="before")
    @classmethod
    def _params_object(cls, value: Any) -> Any:
        return {} if value is None else value


class RunBase(StrategyOnMarket):
    mode: RunMode = RunMode.paper
    stake: StrictFloat = Field(gt=0, le=1e12, description="quote currency the run may use, e.g. USDT")
    exchange_account_id: uuid.UUID | None = Field(
        default=None, description="live runs: the owner's exchange account (keys) that places the orders")


class RunCreate(RunBase):
    """Body of ``POST /api/v1/runs``; an unknown field is a 422."""

    model_config = ConfigDict(extra="forbid")


class Run(SQLModel, table=True):
    __table_args__ = (Index("ix_run_status_market", "status", "exchange", "symbol", "timeframe"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = Field(
        sa_column=Column(SAUuid, ForeignKey("user.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    strategy: str = Field(max_length=100)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    exchange: str = Field(max_length=50)
    symbol: str = Field(max_length=50)
    timeframe: str = Field(max_length=8)
    mode: RunMode = Field(sa_column=enum_column(RunMode))
    stake: float
    status: RunStatus = Field(default=RunStatus.created, sa_column=enum_column(RunStatus))
    status_reason: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow, sa_column=dt_column())
    started_at: datetime | None = Field(default=None, sa_column=dt_column(nullable=True))
    stopped_at: datetime | None = Field(default=None, sa_column=dt_column(nullable=True))
    # The open time (epoch ms) of the last candle this run evaluated; NULL until its first tick.
    last_candle_ms: int | None = Field(default=None, sa_column=ms_column())
    last_tick_at: datetime | None = Field(default=None, sa_column=dt_column(nullable=True))
    # Wallet (quote currency) and position (base currency), updated by the broker each tick.
    cash: float = Field(default=0.0, sa_column=Column(Float, nullable=False))
    position_amount: float = Field(default=0.0, sa_column=Column(Float, nullable=False))
    position_entry_price: float | None = Field(default=None, sa_column=Column(Float))
    realised_pnl: float = Field(default=0.0, sa_column=Column(Float, nullable=False))
    fees_paid: float = Field(default=0.0, sa_column=Column(Float, nullable=False))
    last_price: float | None = Field(default=None, sa_column=Column(Float))
    # Strategy state kept between ticks (stateful hook); JSON-serialisable.
    state: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    # Live runs: the keys that trade, and when a kill (stop, cancel, close at market) was asked.
    exchange_account_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(SAUuid, ForeignKey("exchange_account.id", ondelete="SET NULL"),
                                       nullable=True, index=True))
    killed_at: datetime | None = Field(default=None, sa_column=dt_column(nullable=True))
    # The strategy version this run executes (pinned at creation; moved only by its owner while the
    # run is not running). NULL on rows older than versions: pinned on first use.
    strategy_version_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(SAUuid, ForeignKey("strategy_version.id"), nullable=True, index=True))


class RunPublic(RunBase):
    id: uuid.UUID
    status: RunStatus
    status_reason: str | None
    created_at: datetime
    started_at: datetime | None
    stopped_at: datetime | None
    last_candle_ms: int | None
    last_tick_at: datetime | None
    cash: float
    position_amount: float
    position_entry_price: float | None
    last_price: float | None
    realised_pnl: float
    unrealised_pnl: float
    fees_paid: float
    equity: float
    pnl: float
    pnl_pct: float
    strategy_version: int | None = None
    """The number of the pinned version (``strategy_version_id``)."""

    @classmethod
    def from_run(cls, run: Run) -> "RunPublic":
        """Derive the position's value and PnL from the stored wallet (quote currency)."""
        price = run.last_price if run.last_price is not None else (run.position_entry_price or 0.0)
        unrealised = 0.0
        if run.position_amount and run.position_entry_price is not None:
            unrealised = run.position_amount * (price - run.position_entry_price)
        equity = run.cash + run.position_amount * price
        pnl = equity - run.stake
        data = run.model_dump()
        data.update(
            unrealised_pnl=unrealised, equity=equity, pnl=pnl, pnl_pct=pnl / run.stake * 100.0,
            strategy_version=version_number(object_session(run), run.strategy_version_id),
        )
        return cls.model_validate(data)


class RunsPublic(SQLModel):
    data: list[RunPublic]
    count: int


class EventLevel(str, enum.Enum):
    info = "info"
    warning = "warning"
    error = "error"


class RunEvent(SQLModel, table=True):
    """Something a trader should see about a run: status changes, strategy log lines, errors."""

    __tablename__ = "run_event"
    id: int | None = Field(default=None, sa_column=id_column())
    run_id: uuid.UUID = Field(
        sa_column=Column(SAUuid, ForeignKey("run.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=dt_column())
    candle_ms: int | None = Field(default=None, sa_column=ms_column())
    level: EventLevel = Field(default=EventLevel.info, sa_column=enum_column(EventLevel))
    kind: str = Field(max_length=40)
    message: str = Field(sa_column=Column(Text, nullable=False))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))


class RunEventPublic(SQLModel):
    id: int
    created_at: datetime
    candle_ms: int | None
    level: EventLevel
    kind: str
    message: str
    data: dict[str, Any]


class EquitySnapshot(SQLModel, table=True):
    """The run's wallet valued at one candle's close. One row per tick: ``(run_id, candle_ms)`` is
    unique, which is what makes a tick idempotent."""

    __tablename__ = "equity_snapshot"
    __table_args__ = (UniqueConstraint("run_id", "candle_ms", name="uq_equity_run_candle"),)
    id: int | None = Field(default=None, sa_column=id_column())
    run_id: uuid.UUID = Field(
        sa_column=Column(SAUuid, ForeignKey("run.id", ondelete="CASCADE"), nullable=False)
    )
    candle_ms: int = Field(sa_column=ms_column(nullable=False))
    cash: float
    position_amount: float
    price: float
    equity: float
    evaluated_at: datetime = Field(default_factory=utcnow, sa_column=dt_column())


class EquitySnapshotPublic(SQLModel):
    candle_ms: int
    cash: float
    position_amount: float
    price: float
    equity: float
    evaluated_at: datetime
