"""The simulator's orders and their fills, as Binance's spot API shows them (``GET /api/v3/order``,
``myTrades``), with their JSON form in the state file. Matching them is :mod:`tradefleet.sim.matching`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

Q8 = Decimal("0.00000001")
OPEN_STATUSES = frozenset({"NEW", "PARTIALLY_FILLED"})



def d8(value: Decimal) -> str:
    """Binance's 8-decimal number text."""
    return f"{value.quantize(Q8, rounding=ROUND_DOWN):.8f}"


@dataclass
class SimFill:
    """One trade of an order (a row of ``myTrades``). Amounts are Decimals, ``time`` sim ms."""

    trade_id: int
    order_id: int
    symbol: str
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_buyer: bool
    is_maker: bool

    def trade_view(self) -> dict[str, Any]:
        """Binance's ``GET /api/v3/myTrades`` element."""
        return {
            "symbol": self.symbol,
            "id": self.trade_id,
            "orderId": self.order_id,
            "orderListId": -1,
            "price": d8(self.price),
            "qty": d8(self.qty),
            "quoteQty": d8(self.quote_qty),
            "commission": d8(self.commission),
            "commissionAsset": self.commission_asset,
            "time": self.time,
            "isBuyer": self.is_buyer,
            "isMaker": self.is_maker,
            "isBestMatch": True,
        }

    def fill_view(self) -> dict[str, Any]:
        """An element of the ``fills`` of a FULL order response."""
        return {
            "price": d8(self.price),
            "qty": d8(self.qty),
            "commission": d8(self.commission),
            "commissionAsset": self.commission_asset,
            "tradeId": self.trade_id,
        }

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SimFill:
        dec = {"price", "qty", "quote_qty", "commission"}
        return cls(**{k: (Decimal(v) if k in dec else v) for k, v in raw.items()})


@dataclass
class SimOrder:
    """One order of an account. ``price`` is 0 for market orders; ``next_ms`` is the earliest
    candle open time not yet matched against (resting orders)."""

    order_id: int
    client_order_id: str
    symbol: str
    side: str  # BUY | SELL
    type: str  # MARKET | LIMIT | LIMIT_MAKER
    time_in_force: str | None
    price: Decimal
    orig_qty: Decimal
    orig_quote_qty: Decimal
    time: int
    update_time: int
    status: str = "NEW"
    executed_qty: Decimal = Decimal(0)
    cum_quote: Decimal = Decimal(0)
    locked: Decimal = Decimal(0)  # still locked for this order (quote on buys, base on sells)
    next_ms: int = 0
    fills: list[SimFill] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def base_view(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "price": d8(self.price),
            "origQty": d8(self.orig_qty),
            "executedQty": d8(self.executed_qty),
            "cummulativeQuoteQty": d8(self.cum_quote),
            "status": self.status,
            "timeInForce": self.time_in_force or "GTC",
            "type": self.type,
            "side": self.side,
        }

    def query_view(self) -> dict[str, Any]:
        """Binance's ``GET /api/v3/order`` / ``openOrders`` / ``allOrders`` element."""
        return {
            **self.base_view(),
            "stopPrice": "0.00000000",
            "icebergQty": "0.00000000",
            "time": self.time,
            "updateTime": self.update_time,
            "isWorking": True,
            "workingTime": self.time,
            "origQuoteOrderQty": d8(self.orig_quote_qty),
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }

    def new_view(self, resp_type: str) -> dict[str, Any]:
        """The ``POST /api/v3/order`` reply for ``newOrderRespType`` ACK, RESULT or FULL."""
        ack = {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "transactTime": self.time,
        }
        if resp_type == "ACK":
            return ack
        result = {
            **self.base_view(),
            "transactTime": self.time,
            "workingTime": self.time,
            "origQuoteOrderQty": d8(self.orig_quote_qty),
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }
        if resp_type == "RESULT":
            return result
        return {**result, "fills": [f.fill_view() for f in self.fills if f.time == self.time and not f.is_maker]}

    def to_json(self) -> dict[str, Any]:
        raw = {k: (str(v) if isinstance(v, Decimal) else v) for k, v in asdict(self).items() if k != "fills"}
        raw["fills"] = [f.to_json() for f in self.fills]
        return raw

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SimOrder:
        dec = {"price", "orig_qty", "orig_quote_qty", "executed_qty", "cum_quote", "locked"}
        fills = [SimFill.from_json(f) for f in raw.get("fills", [])]
        values = {k: (Decimal(v) if k in dec else v) for k, v in raw.items() if k != "fills"}
        return cls(**values, fills=fills)
