"""The market catalog traders choose from: each enabled exchange's active spot symbols with their trading
rules, and the timeframes the exchange serves.

The rows are the ones a worker loaded through ccxt (``market/catalog.py``, ``tradefleet refresh-markets``)
and that run and backtest creation validate against (``services/runs.validate_run``), so a form built from
this reply offers exactly what the API accepts.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from tradefleet.api.deps import SessionDep
from tradefleet.config import get_settings
from tradefleet.market.candles import timeframe_ms
from tradefleet.market.catalog import exchange_markets
from tradefleet.market.csvio import CandleDataError, timeframe_alignment

router = APIRouter(prefix="/markets", tags=["markets"])


class MarketPublic(BaseModel):
    """One spot market and the rules an order on it must follow."""

    symbol: str = Field(description="ccxt unified symbol, e.g. BTC/USDT")
    base: str = Field(description="base currency (amounts are in it)")
    quote: str = Field(description="quote currency (prices, stakes and PnL are in it)")
    taker: float = Field(description="taker fee rate, fraction (0.001 = 0.1 %)")
    maker: float = Field(description="maker fee rate, fraction")
    amount_step: float | None = Field(description="amount precision, base currency")
    price_step: float | None = Field(description="price precision, quote currency")
    min_amount: float | None = Field(description="minimum order amount, base currency")
    min_cost: float | None = Field(description="minimum order value, quote currency (a run's stake must reach it)")


class TimeframePublic(BaseModel):
    """A candle timeframe the exchange serves."""

    timeframe: str = Field(description="ccxt timeframe, e.g. 1m, 1h, 1d")
    length_ms: int = Field(description="nominal candle length in milliseconds (a calendar month counts 30 days)")
    fixed_length: bool = Field(description="every candle has this length (calendar months do not); backtests "
                                           "need a fixed-length timeframe")


class ExchangeCatalog(BaseModel):
    exchange: str = Field(description="ccxt exchange id, e.g. binance")
    loaded: bool = Field(description="a worker has loaded this exchange's markets; until then runs and "
                                     "backtests on it answer 503")
    updated_at: datetime | None = Field(description="when the markets were last loaded (UTC)")
    timeframes: list[TimeframePublic] = Field(description="shortest first")
    markets: list[MarketPublic] = Field(description="active spot markets, by symbol")


class MarketCatalog(BaseModel):
    exchanges: list[ExchangeCatalog] = Field(description="one entry per enabled exchange (EXCHANGES_ENABLED), "
                                                         "in that order")


def _timeframe(name: str) -> TimeframePublic:
    try:
        timeframe_alignment(name)
        fixed = True
    except CandleDataError:
        fixed = False
    return TimeframePublic(timeframe=name, length_ms=timeframe_ms(name), fixed_length=fixed)


def _exchange(session: SessionDep, exchange_id: str) -> ExchangeCatalog:
    rows = exchange_markets(session=session, exchange_id=exchange_id)
    names: set[str] = set()
    for row in rows:
        names.update(row.timeframes)
    timeframes = sorted((_timeframe(name) for name in names), key=lambda tf: (tf.length_ms, tf.timeframe))
    return ExchangeCatalog(
        exchange=exchange_id, loaded=bool(rows),
        updated_at=max((row.updated_at for row in rows), default=None),
        timeframes=timeframes,
        markets=[MarketPublic(symbol=row.symbol, base=row.base, quote=row.quote, taker=row.taker, maker=row.maker,
                              amount_step=row.amount_step, price_step=row.price_step, min_amount=row.min_amount,
                              min_cost=row.min_cost)
                 for row in rows if row.active])


@router.get("", response_model=MarketCatalog)
def market_catalog(session: SessionDep) -> MarketCatalog:
    """The market catalog of every enabled exchange: its active spot symbols with their fees, precision and
    minimums, and the timeframes it serves (with their lengths). An exchange whose markets no worker has
    loaded yet is listed with ``loaded: false`` and empty lists."""
    return MarketCatalog(exchanges=[_exchange(session, exchange_id)
                                    for exchange_id in get_settings().EXCHANGES_ENABLED])
