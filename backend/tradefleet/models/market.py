"""What the platform knows of each exchange's markets, refreshed by a worker through ccxt.

The API validates new runs against these rows (it never calls an exchange itself); the brokers read
the fee and precision from them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, String
from sqlmodel import Field, SQLModel

from tradefleet.models._types import JSONType, dt_column, utcnow


class ExchangeMarket(SQLModel, table=True):
    __tablename__ = "exchange_market"
    exchange: str = Field(sa_column=Column(String(50), primary_key=True))
    symbol: str = Field(sa_column=Column(String(50), primary_key=True))
    base: str = Field(max_length=20)
    quote: str = Field(max_length=20)
    active: bool = True
    taker: float = Field(description="taker fee rate, fraction (0.001 = 0.1 %)")
    maker: float = Field(description="maker fee rate, fraction")
    amount_step: float | None = Field(default=None, description="amount precision, base currency")
    price_step: float | None = Field(default=None, description="price precision, quote currency")
    min_amount: float | None = None
    min_cost: float | None = Field(default=None, description="minimum order value, quote currency")
    timeframes: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=dt_column())


class ExchangeMarketPublic(SQLModel):
    exchange: str
    symbol: str
    base: str
    quote: str
    active: bool
    taker: float
    maker: float
    min_cost: float | None
    timeframes: list[str]
