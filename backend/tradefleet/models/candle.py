"""Stored historical candles (OHLCV), one row per ``(exchange, symbol, timeframe, time_ms)``.

Filled by :mod:`tradefleet.market.store` from CSV files and from ``fetch_ohlcv`` downloads, read by
backtests. The composite primary key is what de-duplicates: a candle imported twice (the same file
again, overlapping downloads) stays one row (the store upserts on that key).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, String
from sqlmodel import Field, SQLModel

OHLCV_COLUMNS = ("open", "high", "low", "close", "volume")
"""A candle's values in their order (ccxt's ``fetch_ohlcv`` rows after the time): the columns of a candle
frame, of the ``candle`` table after its key, and of a candle CSV file after ``timestamp``."""


class StoredCandle(SQLModel, table=True):
    """One closed candle. ``time_ms`` is its open time (epoch ms, UTC), as ccxt gives it; prices are in
    the quote currency, ``volume`` in the base currency. ``symbol`` is ccxt's unified symbol
    (``BTC/USDT``), ``timeframe`` a ccxt timeframe (``1h``)."""

    __tablename__ = "candle"

    exchange: str = Field(sa_column=Column(String(50), primary_key=True))
    symbol: str = Field(sa_column=Column(String(50), primary_key=True))
    timeframe: str = Field(sa_column=Column(String(8), primary_key=True))
    time_ms: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    open: float = Field(sa_column=Column(Float, nullable=False))
    high: float = Field(sa_column=Column(Float, nullable=False))
    low: float = Field(sa_column=Column(Float, nullable=False))
    close: float = Field(sa_column=Column(Float, nullable=False))
    volume: float = Field(sa_column=Column(Float, nullable=False))
