"""The simulator's private side: Binance-format errors that make the real ccxt client raise its own
classes, signature and timestamp checks, key permissions, and the apiRestrictions endpoint."""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlencode

import ccxt
import httpx
import pytest
from sim_helpers import T0, csv_row_at

from tradefleet.market.exchange import make_exchange

SYMBOL = "BTC/USDT"
PRICE = float(csv_row_at("BTCUSDT", "1m", T0)[0])


def signed_get(sim, path: str, key: str, secret: str, params: dict, *, sign_with: str | None = None) -> httpx.Response:
    query = urlencode(params)
    sig = hmac.new((sign_with or secret).encode(), query.encode(), hashlib.sha256).hexdigest()
    return httpx.get(f"{sim.base_url}{path}?{query}&signature={sig}", headers={"X-MBX-APIKEY": key})


def test_insufficient_balance_raises_insufficient_funds_and_changes_nothing(make_account, sim) -> None:
    ex, key = make_account({"USDT": "100"})
    with pytest.raises(ccxt.InsufficientFunds):
        ex.create_order(SYMBOL, "market", "buy", 0.01)
    with pytest.raises(ccxt.InsufficientFunds):
        ex.create_order(SYMBOL, "limit", "sell", 0.01, PRICE)
    view = httpx.get(f"{sim.base_url}/sim/accounts/{key}").json()
    assert view["orders"] == [] and view["balances"]["USDT"] == {"free": "100.00000000", "locked": "0.00000000"}


def test_unknown_symbol_raises_bad_symbol(make_account) -> None:
    ex, _ = make_account()
    with pytest.raises(ccxt.BadSymbol):
        ex.privatePostOrder({"symbol": "NOPEUSDT", "side": "BUY", "type": "MARKET", "quantity": "1"})


def test_filter_failures(make_account) -> None:
    ex, _ = make_account({"USDT": "10000"})
    ex.load_markets()
    base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):  # off the 0.00001 step
        ex.privatePostOrder({**base, "quantity": "0.000015", "price": "40000"})
    with pytest.raises(ccxt.InvalidOrder, match="PRICE_FILTER"):  # off the 0.01 tick
        ex.privatePostOrder({**base, "quantity": "0.001", "price": "40000.001"})
    # ccxt maps -1013 NOTIONAL to BadRequest (as against the real exchange)
    with pytest.raises(ccxt.BadRequest, match="NOTIONAL"):
        ex.privatePostOrder({**base, "quantity": "0.0001", "price": "40000"})
    with pytest.raises(ccxt.BadRequest, match="timeInForce"):
        ex.privatePostOrder({k: v for k, v in base.items() if k != "timeInForce"} | {"quantity": "0.001", "price": "40000"})
    with pytest.raises(ccxt.BadRequest):
        ex.privatePostOrder({**base, "quantity": "abc", "price": "40000"})
    assert ex.fetch_open_orders(SYMBOL) == []


def test_unknown_order_raises_order_not_found(make_account) -> None:
    ex, _ = make_account()
    with pytest.raises(ccxt.OrderNotFound):
        ex.fetch_order("987654321", SYMBOL)
    with pytest.raises(ccxt.OrderNotFound):
        ex.fetch_order(None, SYMBOL, {"origClientOrderId": "never-sent"})
    with pytest.raises(ccxt.OrderNotFound):
        ex.cancel_order("987654321", SYMBOL)


def test_wrong_secret_is_an_authentication_error(make_account, sim) -> None:
    _, key = make_account()
    ex = make_exchange("binance", api_base_url=sim.base_url, credentials={"apiKey": key, "secret": "wrong"})
    ex.enableRateLimit = False
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        ex.fetch_balance()


def test_unknown_and_missing_keys(sim) -> None:
    ex = make_exchange("binance", api_base_url=sim.base_url, credentials={"apiKey": "nobody", "secret": "x"})
    ex.enableRateLimit = False
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        ex.fetch_balance()
    reply = httpx.get(f"{sim.base_url}/api/v3/account?timestamp={int(time.time() * 1000)}&signature=00")
    assert reply.status_code == 401 and reply.json()["code"] == -2014


def test_timestamp_window_uses_the_wall_clock(make_account, sim) -> None:
    ex, key = make_account()
    secret = ex.secret
    now = int(time.time() * 1000)
    assert signed_get(sim, "/api/v3/account", key, secret, {"timestamp": now}).status_code == 200
    old = signed_get(sim, "/api/v3/account", key, secret, {"timestamp": now - 6000})
    assert old.status_code == 400 and old.json()["code"] == -1021
    ok_window = signed_get(sim, "/api/v3/account", key, secret, {"timestamp": now - 6000, "recvWindow": 20000})
    assert ok_window.status_code == 200
    ahead = signed_get(sim, "/api/v3/account", key, secret, {"timestamp": now + 5000})
    assert ahead.json()["code"] == -1021
    big = signed_get(sim, "/api/v3/account", key, secret, {"timestamp": now, "recvWindow": 70000})
    assert big.json()["code"] == -1131
    missing = signed_get(sim, "/api/v3/account", key, secret, {"recvWindow": 5000})
    assert missing.json()["code"] == -1102
    ex.options["timeDifference"] = 120_000  # the client's clock 2 minutes behind
    with pytest.raises(ccxt.InvalidNonce):
        ex.fetch_balance()


def test_tampered_parameters_fail_the_signature(make_account, sim) -> None:
    ex, key = make_account()
    query = urlencode({"symbol": "BTCUSDT", "timestamp": int(time.time() * 1000)})
    sig = hmac.new(ex.secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    reply = httpx.get(f"{sim.base_url}/api/v3/openOrders?{query.replace('BTC', 'ETH')}&signature={sig}",
                      headers={"X-MBX-APIKEY": key})
    assert reply.status_code == 400 and reply.json() == {"code": -1022, "msg": "Signature for this request is not valid."}
    no_sig = httpx.get(f"{sim.base_url}/api/v3/openOrders?{query}", headers={"X-MBX-APIKEY": key})
    assert no_sig.json()["code"] == -1102
    # a POST signed over query string + body together, as Binance defines totalParams
    q, body = "symbol=BTCUSDT&side=BUY&type=MARKET", f"quantity=0.001&timestamp={int(time.time() * 1000)}"
    sig = hmac.new(ex.secret.encode(), (q + body).encode(), hashlib.sha256).hexdigest()
    posted = httpx.post(f"{sim.base_url}/api/v3/order?{q}", content=f"{body}&signature={sig}",
                        headers={"X-MBX-APIKEY": key, "Content-Type": "application/x-www-form-urlencoded"})
    assert posted.status_code == 200 and posted.json()["status"] == "FILLED"


def test_permissions_and_api_restrictions(make_account, sim) -> None:
    ex, _ = make_account(permissions={"read": True, "trade": False, "withdraw": True, "ip_restrict": False})
    restrictions = ex.sapiGetAccountApiRestrictions()
    assert restrictions["enableWithdrawals"] is True
    assert restrictions["enableSpotAndMarginTrading"] is False
    assert restrictions["enableReading"] is True and restrictions["ipRestrict"] is False
    assert ex.fetch_balance()["USDT"]["free"] == 10000
    # ccxt's own quirk (as against Binance): -2015 after a successful private call -> DDoSProtection
    with pytest.raises(ccxt.DDoSProtection, match="-2015"):
        ex.create_order(SYMBOL, "market", "buy", 0.001)
    fresh = make_exchange("binance", api_base_url=sim.base_url, credentials={"apiKey": ex.apiKey, "secret": ex.secret})
    fresh.enableRateLimit = False
    fresh.load_markets()
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        fresh.create_order(SYMBOL, "market", "buy", 0.001)
    trader, _ = make_account(permissions={"trade": True})
    assert trader.sapiGetAccountApiRestrictions()["enableWithdrawals"] is False


def test_admin_account_input_is_checked(sim) -> None:
    bad = httpx.post(f"{sim.base_url}/sim/accounts", json={"api_key": "k", "secret": "", "balances": {}})
    assert bad.status_code == 400 and bad.json()["msg"].startswith("secret:")
    bad = httpx.post(f"{sim.base_url}/sim/accounts", json={"api_key": "k", "secret": "s", "balances": {"USDT": -1}})
    assert bad.status_code == 400 and bad.json()["msg"].startswith("balances.USDT:")
    bad = httpx.post(f"{sim.base_url}/sim/accounts", json={"api_key": "k", "secret": "s", "permissions": {"x": True}})
    assert bad.status_code == 400 and bad.json()["msg"].startswith("permissions.x:")
    assert httpx.get(f"{sim.base_url}/sim/accounts/nobody-here").status_code == 404
