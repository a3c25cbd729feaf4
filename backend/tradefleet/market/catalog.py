"""The catalog of each exchange's spot markets, loaded through ccxt by a worker and stored in
``exchange_market`` so the API can validate runs without calling an exchange."""

from __future__ import annotations

import ccxt
from sqlmodel import Session, delete, select

from tradefleet.market.candles import _exchange_lock, public_exchange
from tradefleet.models import ExchangeMarket
from tradefleet.models._types import utcnow


def _step(exchange: ccxt.Exchange, value: float | None) -> float | None:
    if value is None:
        return None
    if exchange.precisionMode == ccxt.DECIMAL_PLACES:
        return 10.0 ** -int(value)
    return float(value)


def refresh_catalog(*, session: Session, exchange_id: str) -> int:
    """Reload ``exchange_id``'s markets through ccxt and replace its rows; returns the spot market count.

    Raises ccxt's exceptions when the exchange cannot be reached (the old rows are then kept).
    """
    exchange = public_exchange(exchange_id)
    with _exchange_lock:
        markets = exchange.load_markets(reload=True)
    timeframes = sorted(exchange.timeframes or {}, key=lambda tf: exchange.parse_timeframe(tf))
    now = utcnow()
    rows = []
    for market in markets.values():
        if not market.get("spot"):
            continue
        limits = market.get("limits") or {}
        precision = market.get("precision") or {}
        rows.append(
            ExchangeMarket(
                exchange=exchange_id,
                symbol=market["symbol"],
                base=market["base"],
                quote=market["quote"],
                active=market.get("active") is not False,
                taker=float(market.get("taker") or 0.0),
                maker=float(market.get("maker") or 0.0),
                amount_step=_step(exchange, precision.get("amount")),
                price_step=_step(exchange, precision.get("price")),
                min_amount=(limits.get("amount") or {}).get("min"),
                min_cost=(limits.get("cost") or {}).get("min"),
                timeframes=timeframes,
                updated_at=now,
            )
        )
    session.exec(delete(ExchangeMarket).where(ExchangeMarket.exchange == exchange_id))
    session.add_all(rows)
    session.commit()
    return len(rows)


def get_market_info(*, session: Session, exchange_id: str, symbol: str) -> ExchangeMarket | None:
    """The stored market, or None."""
    return session.get(ExchangeMarket, (exchange_id, symbol))


def catalog_loaded(*, session: Session, exchange_id: str) -> bool:
    """Whether any market of ``exchange_id`` has been loaded yet."""
    return session.exec(
        select(ExchangeMarket.symbol).where(ExchangeMarket.exchange == exchange_id).limit(1)
    ).first() is not None


def exchange_markets(*, session: Session, exchange_id: str) -> list[ExchangeMarket]:
    """Every stored market of ``exchange_id`` (active or not), ordered by symbol; empty before a worker
    loaded the exchange's catalog."""
    return list(session.exec(
        select(ExchangeMarket).where(ExchangeMarket.exchange == exchange_id).order_by(ExchangeMarket.symbol)
    ).all())
