"""Orders, their fills, and trades (closed round trips) of a run."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Column, Float, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy import Uuid as SAUuid
from sqlmodel import Field, SQLModel

from tradefleet.models._types import enum_column, id_column, dt_column, ms_column, utcnow


class OrderSide(str, enum.Enum):
    buy = "buy"
    sell = "sell"


class OrderType(str, enum.Enum):
    market = "market"
    limit = "limit"


class OrderStatus(str, enum.Enum):
    """``open`` until filled; ``cancelled`` when its run stops first; ``rejected`` by the broker.

    Live orders (:mod:`tradefleet.execution.orders`) start earlier: ``intent`` (written and committed,
    never sent), ``submitted`` (about to be sent or sent, no reply recorded: it may exist on the
    exchange), ``open`` (the exchange has it, not fully filled), then ``filled``, ``cancelled``,
    ``rejected``, or ``unknown`` (a send whose outcome was lost: looked up by its client order id
    before anything is sent again). A partial fill is an ``open`` order with ``filled > 0``."""

    intent = "intent"
    submitted = "submitted"
    open = "open"
    filled = "filled"
    cancelled = "cancelled"
    rejected = "rejected"
    unknown = "unknown"


class OrderReason(enum.StrEnum):
    """Why an order was placed; a closed trade's ``exit_reason`` is its last sell's.

    ``enter_long`` / ``exit_long``: the strategy's signals; ``stoploss``, ``trailing_stop``,
    ``take_profit``: the protective exits (STRATEGIES.md, "The fill model"); ``buy`` / ``sell``: a
    stateful strategy's own orders (``ctx.buy`` / ``ctx.sell``); ``kill``: the position closed at once
    by a kill (a run's, a user's or the platform's)."""

    enter_long = "enter_long"
    exit_long = "exit_long"
    stoploss = "stoploss"
    trailing_stop = "trailing_stop"
    take_profit = "take_profit"
    buy = "buy"
    sell = "sell"
    kill = "kill"


PROTECTIVE_EXITS = (OrderReason.stoploss, OrderReason.trailing_stop, OrderReason.take_profit)
"""Exits a resting order would have made inside a candle (checked before the candle's signals)."""

LIVE_PENDING = (OrderStatus.intent, OrderStatus.submitted, OrderStatus.open, OrderStatus.unknown)
"""States of a live order that is not final: reconciled with the exchange until it is."""
ORDER_FINAL = (OrderStatus.filled, OrderStatus.cancelled, OrderStatus.rejected)
"""States an order never leaves."""


class Order(SQLModel, table=True):
    """One order of a run. ``client_order_id`` is deterministic (run, candle, side) and unique, so an
    order can never be written twice for the same decision."""

    __tablename__ = "order"
    # Each tick reads the open orders and the open trade of its runs: partial indexes keep those
    # lookups off the growing history.
    __table_args__ = (Index("ix_order_run_open", "run_id", postgresql_where=text("status = 'open'"),
                            sqlite_where=text("status = 'open'")),)
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    run_id: uuid.UUID = Field(
        sa_column=Column(SAUuid, ForeignKey("run.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    client_order_id: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    exchange_order_id: str | None = Field(default=None, max_length=64)
    symbol: str = Field(max_length=50)
    side: OrderSide = Field(sa_column=enum_column(OrderSide))
    type: OrderType = Field(sa_column=enum_column(OrderType))
    amount: float = Field(description="requested amount, base currency")
    price: float | None = Field(default=None, description="limit price, quote currency")
    quote_amount: float | None = Field(
        default=None, description="market buys sized in quote: spend this much, fee included"
    )
    status: OrderStatus = Field(sa_column=enum_column(OrderStatus, index=True))
    reason: OrderReason = Field(sa_column=enum_column(OrderReason, length=40))
    signal_candle_ms: int = Field(sa_column=ms_column(nullable=False))
    filled: float = 0.0
    average: float | None = None
    cost: float = Field(default=0.0, description="filled amount times price, quote currency")
    fee: float = Field(default=0.0, sa_column=Column(Float, nullable=False))
    fee_currency: str | None = Field(default=None, max_length=16)
    status_reason: str | None = Field(default=None, sa_column=Column(Text))
    attempts: int = Field(default=0, description="live: sends attempted (each after a look-up by client order id)")
    created_at: datetime = Field(default_factory=utcnow, sa_column=dt_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=dt_column())


class OrderPublic(SQLModel):
    id: uuid.UUID
    client_order_id: str
    exchange_order_id: str | None
    symbol: str
    side: OrderSide
    type: OrderType
    amount: float
    price: float | None
    quote_amount: float | None
    status: OrderStatus
    reason: OrderReason
    signal_candle_ms: int
    filled: float
    average: float | None
    cost: float
    fee: float
    fee_currency: str | None
    status_reason: str | None
    created_at: datetime
    updated_at: datetime


class Fill(SQLModel, table=True):
    """An execution of (part of) an order: amount in base, price and fee in the quote currency.
    Live fills carry the exchange's trade id, unique per order, so recording them is idempotent."""

    __table_args__ = (UniqueConstraint("order_id", "exchange_trade_id", name="uq_fill_order_trade"),)
    id: int | None = Field(default=None, sa_column=id_column())
    order_id: uuid.UUID = Field(
        sa_column=Column(SAUuid, ForeignKey("order.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    run_id: uuid.UUID = Field(
        sa_column=Column(SAUuid, ForeignKey("run.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    side: OrderSide = Field(sa_column=enum_column(OrderSide))
    time_ms: int = Field(sa_column=ms_column(nullable=False))
    price: float
    amount: float
    cost: float
    fee: float
    fee_currency: str = Field(max_length=16)
    exchange_trade_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=dt_column())


class FillPublic(SQLModel):
    id: int
    order_id: uuid.UUID
    side: OrderSide
    time_ms: int
    price: float
    amount: float
    cost: float
    fee: float
    fee_currency: str


class TradeStatus(str, enum.Enum):
    open = "open"
    closed = "closed"


class Trade(SQLModel, table=True):
    """A round trip: opened by the first buy from flat, closed when the position is back to zero.
    ``amount`` is the base bought, ``entry_price`` / ``exit_price`` the averages, ``entry_fee`` /
    ``exit_fee`` the sums; ``pnl`` is net of every fee (see :mod:`tradefleet.execution.account`)."""

    __table_args__ = (Index("ix_trade_run_open", "run_id", postgresql_where=text("status = 'open'"),
                            sqlite_where=text("status = 'open'")),)
    id: int | None = Field(default=None, sa_column=id_column())
    run_id: uuid.UUID = Field(
        sa_column=Column(SAUuid, ForeignKey("run.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    status: TradeStatus = Field(sa_column=enum_column(TradeStatus))
    amount: float = Field(description="base currency")
    entry_time_ms: int = Field(sa_column=ms_column(nullable=False))
    entry_price: float
    entry_fee: float
    exit_time_ms: int | None = Field(default=None, sa_column=ms_column())
    exit_price: float | None = None
    exit_fee: float | None = None
    exit_reason: OrderReason | None = Field(default=None, sa_column=enum_column(OrderReason, length=40, nullable=True))
    pnl: float | None = Field(default=None, description="quote currency, net of fees")
    pnl_pct: float | None = Field(default=None, description="pnl over entry cost plus entry fee, percent")
    high_water_mark: float | None = Field(
        default=None, description="highest price since entry up to the last evaluated candle (trailing stop)"
    )


class TradePublic(SQLModel):
    id: int
    status: TradeStatus
    amount: float
    entry_time_ms: int
    entry_price: float
    entry_fee: float
    exit_time_ms: int | None
    exit_price: float | None
    exit_fee: float | None
    exit_reason: OrderReason | None
    pnl: float | None
    pnl_pct: float | None
