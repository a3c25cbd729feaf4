"""Binance spot signed (private) endpoints of the simulator.

Signed requests are checked as Binance does (:mod:`tradefleet.sim.signing`: key, timestamp window,
signature, permission).

Parameters may come in the query string or the form body (``application/x-www-form-urlencoded``).
Every private request first matches the account's resting orders against the candles closed since
(:func:`tradefleet.sim.matching.match_open_orders`). Order semantics: :mod:`tradefleet.sim.matching`.

Client order ids follow Binance: ``newClientOrderId`` (``^[.A-Z:/a-z0-9_-]{1,36}$``) must be unique
among the account's **open** orders of the market (-2010 "Duplicate order sent.", ccxt
``InvalidOrder``); once that order is filled, cancelled or expired the id may be reused, and a query
by ``origClientOrderId`` returns the latest order with it. An order manager must therefore look an
order up by its client id before sending it again.

Errors and their ccxt classes (``binance.exceptions['exact']``; the sim URL is not api.binance.com, so
ccxt uses its generic maps): -1013 "Filter failure: LOT_SIZE" / "PRICE_FILTER" -> ``InvalidOrder``
(ccxt matches the text), -1013 "Filter failure: NOTIONAL" / "MARKET_LOT_SIZE" -> ``BadRequest``
(as with the real exchange), -2010 insufficient balance -> ``InsufficientFunds``, -2013 "Order does
not exist." and -2011 "Unknown order sent." -> ``OrderNotFound``, -1121 -> ``BadSymbol``,
-1102/-1100/-1106/-1116/-1117/-1115 -> ``BadRequest``, 429 -1003 -> ``DDoSProtection``
(a ``RateLimitExceeded``-like ``NetworkError``; injected with :mod:`tradefleet.sim.faults`).

The admin paths (``/sim/accounts``, ``/sim/faults``) are :mod:`tradefleet.sim.admin`.
"""

from __future__ import annotations

import hashlib
import re
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tradefleet.sim.accounts import SimAccount
from tradefleet.sim.errors import BinanceAPIError, illegal_chars, invalid_symbol, mandatory_param
from tradefleet.sim.matching import MAKER_FEE, TAKER_FEE, place, release
from tradefleet.sim.orders import SimOrder
from tradefleet.sim.public import set_weight, sim_state
from tradefleet.sim.signing import KEY_RE, Signed, authenticate

if TYPE_CHECKING:
    from tradefleet.sim.state import SimState

CLIENT_ID_RE = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
TIME_IN_FORCE = ("GTC", "IOC", "FOK")
RESP_TYPES = ("ACK", "RESULT", "FULL")


def _symbol(request: Request, signed: Signed, *, required: bool = True) -> str | None:
    symbol = signed.get("symbol")
    if symbol is None:
        if required:
            raise mandatory_param("symbol")
        return None
    if symbol not in sim_state(request).rules:
        raise invalid_symbol()
    return symbol


# --- account ---------------------------------------------------------------------------------------


async def account_info(request: Request) -> Response:
    """``GET /api/v3/account`` (account-endpoints#account-information-user_data), weight 20.

    ``{"makerCommission": 10, "takerCommission": 10, ..., "commissionRates": {"maker": "0.00100000", ...},
    "canTrade", "canWithdraw", "canDeposit", "accountType": "SPOT", "updateTime",
    "balances": [{"asset", "free", "locked"}], "permissions": ["SPOT"], "uid"}``;
    ``omitZeroBalances=true`` leaves out assets with free = locked = 0.
    """
    set_weight(request, 20)
    signed = await authenticate(request, permission="read")
    account = signed.account
    omit_zero = (signed.get("omitZeroBalances") or "false").lower() == "true"
    with account.lock:
        balances = [
            {"asset": a, "free": f"{b.free:.8f}", "locked": f"{b.locked:.8f}"}
            for a, b in sorted(account.balances.items())
            if not (omit_zero and b.free == 0 and b.locked == 0)
        ]
        update = max([account.created_ms] + [o.update_time for o in account.orders.values()])
    rates = {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000", "seller": "0.00000000"}
    return JSONResponse({
        "makerCommission": 10,
        "takerCommission": 10,
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": rates,
        "canTrade": account.permissions["trade"],
        "canWithdraw": account.permissions["withdraw"],
        "canDeposit": True,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": update,
        "accountType": "SPOT",
        "balances": balances,
        "permissions": ["SPOT"],
        "uid": int(hashlib.sha256(account.api_key.encode()).hexdigest()[:8], 16),
    })


async def api_restrictions(request: Request) -> Response:
    """``GET /sapi/v1/account/apiRestrictions`` (wallet: Get API Key Permission), weight 1.

    ``{"ipRestrict", "createTime", "enableReading", "enableSpotAndMarginTrading", "enableWithdrawals",
    "enableInternalTransfer", "enableMargin", "enableFutures", "permitsUniversalTransfer",
    "enableVanillaOptions", "enableFixApiTrade", "enableFixReadOnly", "enablePortfolioMarginTrading"}``
    from the account's permissions. Needs only a valid key and signature (any permission).
    """
    set_weight(request, 1)
    state = sim_state(request)
    key = request.headers.get("x-mbx-apikey", "")
    account = state.accounts.get(key) if KEY_RE.match(key) else None
    # Binance answers this for any valid key, even one without the reading permission.
    perm = next((p for p, on in account.permissions.items() if on), "read") if account else "read"
    signed = await authenticate(request, permission=perm)
    p = signed.account.permissions
    return JSONResponse({
        "ipRestrict": p["ip_restrict"],
        "createTime": signed.account.created_ms,
        "enableInternalTransfer": False,
        "enableFutures": False,
        "enablePortfolioMarginTrading": False,
        "enableVanillaOptions": False,
        "permitsUniversalTransfer": False,
        "enableReading": p["read"],
        "enableSpotAndMarginTrading": p["trade"],
        "enableWithdrawals": p["withdraw"],
        "enableMargin": False,
        "enableFixApiTrade": False,
        "enableFixReadOnly": False,
    })


async def trade_fee(request: Request) -> Response:
    """``GET /sapi/v1/asset/tradeFee[?symbol=]`` (wallet: Trade Fee), weight 1: the account's fee rates,
    ``[{"symbol", "makerCommission": "0.001", "takerCommission": "0.001"}]`` (every market without
    ``symbol``). ccxt's ``fetch_trading_fee(s)``.
    """
    set_weight(request, 1)
    signed = await authenticate(request, permission="read")
    symbol = _symbol(request, signed, required=False)
    symbols = [symbol] if symbol else sorted(sim_state(request).rules)
    rate = f"{MAKER_FEE.normalize():f}", f"{TAKER_FEE.normalize():f}"
    return JSONResponse([{"symbol": s, "makerCommission": rate[0], "takerCommission": rate[1]} for s in symbols])


# --- orders ----------------------------------------------------------------------------------------


async def new_order(request: Request) -> Response:
    """``POST /api/v3/order`` (trading-endpoints#new-order-trade), weight 1.

    Params: ``symbol``, ``side`` (BUY/SELL), ``type`` (MARKET, LIMIT, LIMIT_MAKER), ``quantity``
    (or, MARKET only, ``quoteOrderQty``), ``price`` and ``timeInForce`` (LIMIT), ``newClientOrderId``,
    ``newOrderRespType`` (ACK, RESULT, FULL; default FULL for MARKET/LIMIT like Binance).
    Reply per :meth:`~tradefleet.sim.orders.SimOrder.new_view`. Errors: -1102 missing parameter, -1100
    malformed number/id, -1116 unsupported type, -1117 bad side, -1115 bad timeInForce, -1106 a
    parameter the type does not take, -1013 filters, -2010 insufficient balance / duplicate /
    LIMIT_MAKER that would take, -1121 unknown market, HTTP 429 -1015 over the app's ``order_limit_10s``.
    """
    set_weight(request, 1)
    signed = await authenticate(request, permission="trade")
    state = sim_state(request)
    symbol = _symbol(request, signed)
    assert symbol is not None
    side = signed.required("side")
    if side not in ("BUY", "SELL"):
        raise BinanceAPIError(-1117, "Invalid side.")
    order_type = signed.required("type")
    if order_type not in ("MARKET", "LIMIT", "LIMIT_MAKER"):
        raise BinanceAPIError(-1116, "Invalid orderType.")
    resp_type = signed.get("newOrderRespType") or "FULL"
    if resp_type not in RESP_TYPES:
        raise BinanceAPIError(-1136, "Invalid newOrderRespType")
    client_id = signed.get("newClientOrderId")
    if client_id is not None and not CLIENT_ID_RE.match(client_id):
        raise illegal_chars("newClientOrderId", CLIENT_ID_RE.pattern)
    qty = signed.decimal("quantity")
    quote_qty = signed.decimal("quoteOrderQty")
    price = signed.decimal("price")
    tif = signed.get("timeInForce")
    if order_type == "MARKET":
        if qty is None and quote_qty is None:
            raise BinanceAPIError(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
        if qty is not None and quote_qty is not None:
            raise BinanceAPIError(-1106, "Parameter 'quoteOrderQty' sent when not required.")
        if price is not None:
            raise BinanceAPIError(-1106, "Parameter 'price' sent when not required.")
        if tif is not None:
            raise BinanceAPIError(-1106, "Parameter 'timeInForce' sent when not required.")
        if (qty is not None and qty <= 0) or (quote_qty is not None and quote_qty <= 0):
            raise BinanceAPIError(-1013, "Invalid quantity.")
    else:
        if qty is None:
            raise mandatory_param("quantity")
        if price is None:
            raise mandatory_param("price")
        if quote_qty is not None:
            raise BinanceAPIError(-1106, "Parameter 'quoteOrderQty' sent when not required.")
        if order_type == "LIMIT":
            if tif is None:
                raise mandatory_param("timeInForce")
            if tif not in TIME_IN_FORCE:
                raise BinanceAPIError(-1115, "Invalid timeInForce.")
        elif tif is not None:
            raise BinanceAPIError(-1106, "Parameter 'timeInForce' sent when not required.")
        if qty <= 0:
            raise BinanceAPIError(-1013, "Invalid quantity.")
        if price <= 0:
            raise BinanceAPIError(-1013, "Invalid price.")
    account = signed.account
    with account.lock:
        if state.order_limit_10s is not None:
            wall = time.monotonic()
            while account.recent_orders and account.recent_orders[0] <= wall - 10:
                account.recent_orders.popleft()
            if len(account.recent_orders) >= state.order_limit_10s:
                raise BinanceAPIError(-1015, f"Too many new orders; current limit is {state.order_limit_10s} "
                                      "orders per 10 SECOND.", status=429)
            account.recent_orders.append(wall)
        if client_id is not None and account.open_with_client_id(symbol, client_id):
            raise BinanceAPIError(-2010, "Duplicate order sent.")
        now = state.clock.now_ms()
        order_id = state.accounts.next_order_id()
        if client_id is None:
            client_id = f"sim{order_id:020d}"
        order = SimOrder(
            order_id=order_id, client_order_id=client_id, symbol=symbol, side=side, type=order_type,
            time_in_force=tif if order_type == "LIMIT" else "GTC",
            price=price or Decimal(0), orig_qty=qty or Decimal(0), orig_quote_qty=quote_qty or Decimal(0),
            time=now, update_time=now,
        )
        place(account, state.rules[symbol], state.data, order, now_ms=now, next_trade_id=state.accounts.next_trade_id)
        view = order.new_view(resp_type)
    state.accounts.save()
    return JSONResponse(view)


def _find(request: Request, signed: Signed, *, missing_code: int, missing_msg: str) -> tuple[str, SimOrder]:
    symbol = _symbol(request, signed)
    assert symbol is not None
    order_id = signed.integer("orderId")
    client_id = signed.get("origClientOrderId")
    if order_id is None and client_id is None:
        raise BinanceAPIError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
    order = signed.account.find(symbol, order_id, client_id)
    if order is None:
        raise BinanceAPIError(missing_code, missing_msg)
    return symbol, order


async def query_order(request: Request) -> Response:
    """``GET /api/v3/order?symbol=&orderId=|origClientOrderId=`` (account-endpoints#query-order-user_data).

    Weight 4. Reply: :meth:`~tradefleet.sim.orders.SimOrder.query_view`. -2013 "Order does not exist."
    """
    set_weight(request, 4)
    signed = await authenticate(request, permission="read")
    with signed.account.lock:
        _, order = _find(request, signed, missing_code=-2013, missing_msg="Order does not exist.")
        return JSONResponse(order.query_view())


def _cancel(state: SimState, account: SimAccount, order: SimOrder, cancel_id: str | None) -> dict[str, Any]:
    release(account, state.rules[order.symbol], order)
    order.status = "CANCELED"
    order.update_time = state.clock.now_ms()
    view = order.base_view()
    view["origClientOrderId"] = order.client_order_id
    view["clientOrderId"] = cancel_id or f"simcancel{order.order_id}"
    view["transactTime"] = order.update_time
    view["selfTradePreventionMode"] = "EXPIRE_MAKER"
    return view


async def cancel_order(request: Request) -> Response:
    """``DELETE /api/v3/order?symbol=&orderId=|origClientOrderId=[&newClientOrderId=]`` (trading-endpoints#cancel-order-trade).

    Weight 1. Reply: the order fields with ``status: "CANCELED"``, ``origClientOrderId`` (the order's
    id) and ``clientOrderId`` (the cancel's). -2011 "Unknown order sent." when there is no such order
    or it is no longer open (ccxt ``OrderNotFound``).
    """
    set_weight(request, 1)
    signed = await authenticate(request, permission="trade")
    state = sim_state(request)
    with signed.account.lock:
        _, order = _find(request, signed, missing_code=-2011, missing_msg="Unknown order sent.")
        if not order.is_open:
            raise BinanceAPIError(-2011, "Unknown order sent.")
        view = _cancel(state, signed.account, order, signed.get("newClientOrderId"))
    state.accounts.save()
    return JSONResponse(view)


async def open_orders(request: Request) -> Response:
    """``GET /api/v3/openOrders[?symbol=]`` (account-endpoints#current-open-orders-user_data).

    Weight 6 with a symbol, 80 without. A list of query views, oldest first.
    """
    signed_symbol = request.query_params.get("symbol")
    set_weight(request, 6 if signed_symbol else 80)
    signed = await authenticate(request, permission="read")
    symbol = _symbol(request, signed, required=False)
    with signed.account.lock:
        return JSONResponse([o.query_view() for o in signed.account.open_orders(symbol)])


async def cancel_open_orders(request: Request) -> Response:
    """``DELETE /api/v3/openOrders?symbol=`` (trading-endpoints#cancel-all-open-orders-on-a-symbol-trade).

    Weight 1. A list of cancel replies; -2011 "Unknown order sent." when the market has no open order.
    """
    set_weight(request, 1)
    signed = await authenticate(request, permission="trade")
    state = sim_state(request)
    symbol = _symbol(request, signed)
    with signed.account.lock:
        orders = signed.account.open_orders(symbol)
        if not orders:
            raise BinanceAPIError(-2011, "Unknown order sent.")
        views = [_cancel(state, signed.account, o, None) for o in orders]
    state.accounts.save()
    return JSONResponse(views)


def _limit(signed: Signed) -> int:
    limit = signed.integer("limit")
    if limit is None:
        return 500
    if limit < 1:
        raise BinanceAPIError(-1130, "Data sent for parameter 'limit' is not valid.")
    return min(limit, 1000)


async def all_orders(request: Request) -> Response:
    """``GET /api/v3/allOrders?symbol=[&orderId=][&startTime=][&endTime=][&limit=500]`` (account-endpoints#all-orders-user_data).

    Weight 20. The market's orders (any status) with ``orderId >=`` the given one, or ``time`` within
    [startTime, endTime]; oldest first, at most ``limit`` (max 1000; with only ``endTime`` or nothing,
    the latest ``limit``).
    """
    set_weight(request, 20)
    signed = await authenticate(request, permission="read")
    symbol = _symbol(request, signed)
    from_id, start, end, limit = signed.integer("orderId"), signed.integer("startTime"), signed.integer("endTime"), _limit(signed)
    with signed.account.lock:
        rows = [o for o in signed.account.orders.values() if o.symbol == symbol]
        if from_id is not None:
            rows = [o for o in rows if o.order_id >= from_id][:limit]
        else:
            rows = [o for o in rows if (start is None or o.time >= start) and (end is None or o.time <= end)]
            rows = rows[:limit] if start is not None else rows[-limit:]
        return JSONResponse([o.query_view() for o in rows])


async def my_trades(request: Request) -> Response:
    """``GET /api/v3/myTrades?symbol=[&orderId=][&startTime=][&endTime=][&fromId=][&limit=500]`` (account-endpoints#account-trade-list-user_data).

    Weight 20. Fills of the market, oldest first: ``{symbol, id, orderId, orderListId, price, qty,
    quoteQty, commission, commissionAsset, time, isBuyer, isMaker, isBestMatch}``. ``fromId``: trade
    ids >= it; ``startTime``/``endTime``: by trade time (sim ms); ``orderId``: that order's fills.
    -1128 when ``fromId`` comes with a time bound.
    """
    set_weight(request, 20)
    signed = await authenticate(request, permission="read")
    symbol = _symbol(request, signed)
    order_id, from_id = signed.integer("orderId"), signed.integer("fromId")
    start, end, limit = signed.integer("startTime"), signed.integer("endTime"), _limit(signed)
    if from_id is not None and (start is not None or end is not None):
        raise BinanceAPIError(-1128, "Combination of optional parameters invalid.")
    with signed.account.lock:
        rows = [t for t in signed.account.trades if t.symbol == symbol]
    rows.sort(key=lambda t: t.trade_id)
    if order_id is not None:
        rows = [t for t in rows if t.order_id == order_id]
    if from_id is not None:
        rows = [t for t in rows if t.trade_id >= from_id][:limit]
    else:
        rows = [t for t in rows if (start is None or t.time >= start) and (end is None or t.time <= end)]
        rows = rows[:limit] if start is not None else rows[-limit:]
    return JSONResponse([t.trade_view() for t in rows])


ROUTES: list[Route] = [
    Route("/api/v3/account", account_info, methods=["GET"]),
    Route("/api/v3/order", new_order, methods=["POST"]),
    Route("/api/v3/order", query_order, methods=["GET"]),
    Route("/api/v3/order", cancel_order, methods=["DELETE"]),
    Route("/api/v3/openOrders", open_orders, methods=["GET"]),
    Route("/api/v3/openOrders", cancel_open_orders, methods=["DELETE"]),
    Route("/api/v3/allOrders", all_orders, methods=["GET"]),
    Route("/api/v3/myTrades", my_trades, methods=["GET"]),
    Route("/sapi/v1/account/apiRestrictions", api_restrictions, methods=["GET"]),
    Route("/sapi/v1/asset/tradeFee", trade_fee, methods=["GET"]),
]
"""The private routes; :func:`tradefleet.sim.app.create_app` mounts them."""
