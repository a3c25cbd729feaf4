"""Trading rules of the simulated markets, and their ``exchangeInfo`` entries.

Format source: https://developers.binance.com/docs/binance-spot-api-docs/rest-api/general-endpoints#exchange-information
and https://developers.binance.com/docs/binance-spot-api-docs/filters .
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from tradefleet.sim.data import MarketData, Series

ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"]
MIN_NOTIONAL = "5"
MAX_PRICE = "1000000"

# (tickSize, stepSize, maxQty, market maxQty) as Binance spot had them in 2024.
_KNOWN_RULES: dict[str, tuple[str, str, str, str]] = {
    "BTCUSDT": ("0.01", "0.00001", "9000", "100"),
    "ETHUSDT": ("0.01", "0.0001", "9000", "2000"),
    "BNBUSDT": ("0.1", "0.001", "9000", "2000"),  # the January 2024 candles are on a 0.1 grid
    "SOLUSDT": ("0.01", "0.001", "9000", "20000"),
    "XRPUSDT": ("0.0001", "0.1", "9222449", "2000000"),
    "DOGEUSDT": ("0.00001", "1", "9000000", "20000000"),
}


def fmt8(value: str | Decimal | float) -> str:
    """Binance's fixed 8-decimal number text: ``fmt8("0.01") == "0.01000000"``."""
    return f"{Decimal(str(value)):.8f}"


@dataclass(frozen=True)
class SymbolRules:
    """Trading rules of one spot market. Sizes are decimal strings (``tick_size="0.01"``)."""

    symbol: str
    base: str
    quote: str
    tick_size: str
    step_size: str
    max_qty: str
    market_max_qty: str
    min_notional: str = MIN_NOTIONAL

    @property
    def tick(self) -> Decimal:
        return Decimal(self.tick_size)

    @property
    def step(self) -> Decimal:
        return Decimal(self.step_size)

    def exchange_info_entry(self) -> dict[str, Any]:
        """This market as one element of ``exchangeInfo.symbols`` (status ``TRADING``, spot only)."""
        return {
            "symbol": self.symbol,
            "status": "TRADING",
            "baseAsset": self.base,
            "baseAssetPrecision": 8,
            "quoteAsset": self.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": list(ORDER_TYPES),
            "icebergAllowed": True,
            "ocoAllowed": True,
            "otoAllowed": True,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": False,
            "cancelReplaceAllowed": True,
            "amendAllowed": False,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": fmt8(self.tick_size),
                    "maxPrice": fmt8(MAX_PRICE),
                    "tickSize": fmt8(self.tick_size),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": fmt8(self.step_size),
                    "maxQty": fmt8(self.max_qty),
                    "stepSize": fmt8(self.step_size),
                },
                {"filterType": "ICEBERG_PARTS", "limit": 10},
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": fmt8(0),
                    "maxQty": fmt8(self.market_max_qty),
                    "stepSize": fmt8(0),
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": fmt8(self.min_notional),
                    "applyMinToMarket": True,
                    "maxNotional": fmt8("9000000"),
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
            ],
            "permissions": ["SPOT"],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }


def _grid_decimals(values: np.ndarray, max_decimals: int = 8) -> int:
    """Fewest decimals d such that every value is (up to float noise) a multiple of 10**-d."""
    sample = values[np.isfinite(values)]
    for d in range(max_decimals + 1):
        scaled = sample * 10.0**d
        if np.all(np.abs(scaled - np.round(scaled)) <= np.maximum(1e-6, np.abs(scaled) * 1e-12)):
            return d
    return max_decimals


def derive_rules(symbol: str, base: str, quote: str, series: Series) -> SymbolRules:
    """Rules for a market not in the built-in table, inferred from its recorded candles.

    tickSize = the finest price grid of the recorded prices; stepSize = the finest grid of the
    recorded volumes (both capped at 8 decimals).
    """
    tick = Decimal(1).scaleb(-_grid_decimals(series.ohlcv[:, :4].ravel()))
    step = Decimal(1).scaleb(-_grid_decimals(series.ohlcv[:, 4]))
    return SymbolRules(
        symbol=symbol,
        base=base,
        quote=quote,
        tick_size=format(tick, "f"),
        step_size=format(step, "f"),
        max_qty="9000000",
        market_max_qty="1000000",
    )


def build_rules(data: MarketData) -> dict[str, SymbolRules]:
    """Rules of every recorded market: the built-in 2024 Binance values, else :func:`derive_rules`."""
    rules: dict[str, SymbolRules] = {}
    for symbol in data.symbols:
        base, quote = data.assets[symbol]
        known = _KNOWN_RULES.get(symbol)
        if known is not None:
            tick, step, max_qty, market_max = known
            rules[symbol] = SymbolRules(symbol, base, quote, tick, step, max_qty, market_max)
        else:
            finest = next(iter(data.series[symbol].values()))
            rules[symbol] = derive_rules(symbol, base, quote, finest)
    return rules
