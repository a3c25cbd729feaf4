"""The simulator's private side driven by the real ccxt binance client: balances, market and limit
orders with Binance's fees, resting/partial fills against the recorded candles, cancels, open orders,
order history, trades, client order ids and concurrent orders."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import ROUND_DOWN, Decimal

import ccxt
import httpx
import pytest
from sim_helpers import MINUTE, T0, csv_row_at

SYMBOL = "BTC/USDT"


def open_at(ms: int) -> Decimal:
    return Decimal(csv_row_at("BTCUSDT", "1m", ms)[0])


def row(ms: int) -> tuple[Decimal, ...]:
    return tuple(Decimal(x) for x in csv_row_at("BTCUSDT", "1m", ms))


def admin_view(sim, api_key: str) -> dict:
    reply = httpx.get(f"{sim.base_url}/sim/accounts/{api_key}")
    assert reply.status_code == 200
    return reply.json()


def test_balances_are_the_provisioned_ones(make_account) -> None:
    ex, _ = make_account({"USDT": "1234.5", "BTC": "0.25"})
    balance = ex.fetch_balance()
    assert balance["USDT"] == {"free": 1234.5, "used": 0.0, "total": 1234.5}
    assert balance["BTC"]["free"] == 0.25
    raw = ex.privateGetAccount({"omitZeroBalances": "true"})
    assert {b["asset"] for b in raw["balances"]} == {"BTC", "USDT"}
    assert raw["accountType"] == "SPOT" and raw["canTrade"] is True and raw["canWithdraw"] is False


def test_market_buy_fills_at_the_forming_candle_open_with_fee_in_base(make_account, sim) -> None:
    ex, key = make_account({"USDT": "10000"})
    price = open_at(T0)
    order = ex.create_order(SYMBOL, "market", "buy", 0.01)
    assert order["status"] == "closed"
    assert Decimal(str(order["average"])) == price
    assert order["filled"] == 0.01
    assert order["fee"] == {"currency": "BTC", "cost": 0.00001}
    assert len(order["trades"]) == 1
    cost = (price * Decimal("0.01")).quantize(Decimal("0.00000001"))
    view = admin_view(sim, key)
    assert Decimal(view["balances"]["BTC"]["free"]) == Decimal("0.00999")
    assert Decimal(view["balances"]["USDT"]["free"]) == Decimal(10000) - cost
    trades = ex.fetch_my_trades(SYMBOL)
    assert [(t["side"], t["takerOrMaker"], t["amount"]) for t in trades] == [("buy", "taker", 0.01)]
    assert trades[0]["order"] == order["id"]


def test_market_sell_charges_the_fee_in_quote(make_account, sim) -> None:
    ex, key = make_account({"BTC": "1"})
    sim.clock.set(T0 + 7 * MINUTE + 30_000)  # inside the candle opening at T0 + 7 min
    price = open_at(T0 + 7 * MINUTE)
    order = ex.create_order(SYMBOL, "market", "sell", 0.1)
    quote = (price * Decimal("0.1")).quantize(Decimal("0.00000001"))
    fee = (quote * Decimal("0.001")).quantize(Decimal("0.00000001"), rounding=ROUND_DOWN)
    assert Decimal(str(order["fee"]["cost"])) == fee and order["fee"]["currency"] == "USDT"
    view = admin_view(sim, key)
    assert Decimal(view["balances"]["USDT"]["free"]) == quote - fee
    assert Decimal(view["balances"]["BTC"]["free"]) == Decimal("0.9")


def test_market_buy_by_cost_uses_quote_order_qty(make_account) -> None:
    ex, _ = make_account({"USDT": "1000"})
    price = open_at(T0)
    order = ex.create_order(SYMBOL, "market", "buy", None, None, {"quoteOrderQty": "100"})
    expected_qty = (Decimal(100) / price).quantize(Decimal("0.00001"), rounding=ROUND_DOWN)
    assert Decimal(str(order["filled"])) == expected_qty
    assert order["info"]["origQuoteOrderQty"] == "100.00000000"


def test_limit_buy_rests_locks_funds_fills_when_a_later_candle_reaches_it(make_account, sim) -> None:
    ex, key = make_account({"USDT": "10000"})
    lows = {i: row(T0 + i * MINUTE)[2] for i in range(10)}
    price = min(lows.values())
    assert price < open_at(T0)
    first = min(i for i, low in lows.items() if low <= price)
    order = ex.create_order(SYMBOL, "limit", "buy", 0.01, float(price), {"clientOrderId": "rest-1"})
    assert order["status"] == "open" and order["filled"] == 0
    balance = ex.fetch_balance()
    locked = price * Decimal("0.01")
    assert Decimal(str(balance["USDT"]["used"])) == locked
    assert Decimal(str(balance["USDT"]["free"])) == Decimal(10000) - locked
    sim.clock.set(T0 + first * MINUTE + MINUTE - 1)  # the crossing candle has not closed yet
    assert ex.fetch_order(order["id"], SYMBOL)["status"] == "open"
    sim.clock.set(T0 + 10 * MINUTE)
    done = ex.fetch_order(None, SYMBOL, {"origClientOrderId": "rest-1"})
    assert done["status"] == "closed" and done["filled"] == 0.01 and done["price"] == float(price)
    trade, = ex.fetch_my_trades(SYMBOL)
    assert trade["takerOrMaker"] == "maker"
    assert trade["timestamp"] == T0 + first * MINUTE + MINUTE - 1
    assert trade["fee"] == {"currency": "BTC", "cost": 0.00001}
    view = admin_view(sim, key)
    assert view["balances"]["USDT"] == {"free": f"{Decimal(10000) - locked:.8f}", "locked": "0.00000000"}
    assert ex.fetch_open_orders(SYMBOL) == []


def test_large_limit_order_fills_in_parts(make_account, sim) -> None:
    ex, key = make_account({"USDT": "100000000"})
    price = open_at(T0) + 1000  # a buy above the current price takes at once, at the current price
    taker = ex.create_order(SYMBOL, "limit", "buy", 0.01, float(price))
    assert taker["status"] == "closed" and taker["trades"][0]["price"] == float(open_at(T0))
    below = open_at(T0) - 5  # rests: later candles reach it sooner or later
    qty = Decimal(1000)
    order = ex.create_order(SYMBOL, "limit", "buy", float(qty), float(below))
    crossing = next(i for i in range(1, 500) if row(T0 + i * MINUTE)[2] <= below)
    sim.clock.set(T0 + (crossing + 1) * MINUTE)
    part = ex.fetch_order(order["id"], SYMBOL)
    cap = (row(T0 + crossing * MINUTE)[4] * Decimal("0.25")).quantize(Decimal("0.00001"), rounding=ROUND_DOWN)
    assert cap < qty
    assert part["status"] == "open" and part["info"]["status"] == "PARTIALLY_FILLED"
    assert Decimal(str(part["filled"])) == cap
    balance = ex.fetch_balance()
    assert Decimal(str(balance["USDT"]["used"])) == ((qty - cap) * below).quantize(Decimal("0.00000001"))
    cancelled = ex.cancel_order(order["id"], SYMBOL)
    assert cancelled["status"] == "canceled" and cancelled["info"]["executedQty"] == f"{cap:.8f}"
    assert ex.fetch_balance()["USDT"]["used"] == 0
    trades = ex.fetch_my_trades(SYMBOL)
    assert [t["order"] for t in trades] == [taker["id"], order["id"]]
    view = admin_view(sim, key)
    spent = Decimal(taker["info"]["cummulativeQuoteQty"]) + cap * below
    assert Decimal(view["balances"]["USDT"]["free"]) == Decimal(100000000) - spent


def test_limit_sell_locks_base_and_cancel_releases_it(make_account) -> None:
    ex, _ = make_account({"BTC": "0.5"})
    order = ex.create_order(SYMBOL, "limit", "sell", 0.2, float(open_at(T0) + 5000))
    assert ex.fetch_balance()["BTC"] == {"free": 0.3, "used": 0.2, "total": 0.5}
    assert [o["id"] for o in ex.fetch_open_orders()] == [order["id"]]
    ex.cancel_order(order["id"], SYMBOL)
    assert ex.fetch_balance()["BTC"] == {"free": 0.5, "used": 0.0, "total": 0.5}
    with pytest.raises(ccxt.OrderNotFound):
        ex.cancel_order(order["id"], SYMBOL)  # -2011: no longer open


def test_cancel_all_and_order_history(make_account) -> None:
    ex, _ = make_account({"USDT": "10000"})
    low = open_at(T0) - 2000
    ids = [ex.create_order(SYMBOL, "limit", "buy", 0.01, float(low - i))["id"] for i in range(3)]
    filled = ex.create_order(SYMBOL, "market", "buy", 0.001)
    cancelled = ex.cancel_all_orders(SYMBOL)
    assert sorted(o["id"] for o in cancelled) == sorted(ids)
    assert ex.fetch_open_orders(SYMBOL) == []
    history = ex.fetch_orders(SYMBOL)
    assert [(o["id"], o["status"]) for o in history] == [(i, "canceled") for i in ids] + [(filled["id"], "closed")]
    with pytest.raises(ccxt.OrderNotFound):
        ex.cancel_all_orders(SYMBOL)


def test_duplicate_client_order_id_while_open_and_reuse_after_close(make_account, sim) -> None:
    ex, key = make_account({"USDT": "10000"})
    low = float(open_at(T0) - 3000)
    first = ex.create_order(SYMBOL, "limit", "buy", 0.01, low, {"clientOrderId": "dup-1"})
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        ex.create_order(SYMBOL, "limit", "buy", 0.01, low, {"clientOrderId": "dup-1"})
    assert len(admin_view(sim, key)["orders"]) == 1
    ex.cancel_order(None, SYMBOL, {"origClientOrderId": "dup-1"})
    second = ex.create_order(SYMBOL, "market", "buy", 0.001, None, {"clientOrderId": "dup-1"})
    # Like Binance: the id is unique among OPEN orders; a lookup returns the latest order with it.
    assert ex.fetch_order(None, SYMBOL, {"origClientOrderId": "dup-1"})["id"] == second["id"] != first["id"]
    assert ex.fetch_order(first["id"], SYMBOL)["status"] == "canceled"


def test_concurrent_orders_never_overspend(make_account, sim) -> None:
    ex, key = make_account({"USDT": "10000"})
    ex.load_markets()

    def buy(i: int) -> str:
        try:
            ex.create_order(SYMBOL, "market", "buy", None, None, {"quoteOrderQty": "1000", "clientOrderId": f"c{i}"})
            return "ok"
        except ccxt.InsufficientFunds:
            return "funds"

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(buy, range(20)))
    assert results.count("ok") == 10 and results.count("funds") == 10
    view = admin_view(sim, key)
    assert len(view["orders"]) == 10 and len(view["trades"]) == 10
    assert Decimal(view["balances"]["USDT"]["free"]) >= 0
    spent = sum(Decimal(o["cummulativeQuoteQty"]) for o in view["orders"])
    assert Decimal(view["balances"]["USDT"]["free"]) == Decimal(10000) - spent


def test_ack_and_result_response_types(make_account) -> None:
    ex, _ = make_account({"USDT": "10000"})
    ack = ex.create_order(SYMBOL, "market", "buy", 0.001, None, {"newOrderRespType": "ACK"})
    assert set(ack["info"]) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}
    result = ex.create_order(SYMBOL, "market", "buy", 0.001, None, {"newOrderRespType": "RESULT"})
    assert result["info"]["status"] == "FILLED" and "fills" not in result["info"]


def test_concurrent_polls_book_a_fill_once(make_account, sim) -> None:
    ex, key = make_account({"USDT": "10000"})
    ex.load_markets()
    price = float(open_at(T0) - 5)
    order = ex.create_order(SYMBOL, "limit", "buy", 0.01, price)
    sim.clock.set(T0 + 30 * MINUTE)
    with ThreadPoolExecutor(max_workers=8) as pool:
        seen = list(pool.map(lambda _: ex.fetch_order(order["id"], SYMBOL)["status"], range(16)))
    assert set(seen) == {"closed"}
    assert len(ex.fetch_my_trades(SYMBOL)) == 1
    assert admin_view(sim, key)["balances"]["BTC"]["free"] == "0.00999000"


def test_trading_fees(make_account) -> None:
    ex, _ = make_account()
    fee = ex.fetch_trading_fee(SYMBOL)
    assert (fee["maker"], fee["taker"]) == (0.001, 0.001)
    assert "ETH/USDT" in ex.fetch_trading_fees()
