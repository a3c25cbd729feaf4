"""Fault injection of the simulator (``/sim/faults``) seen through the real ccxt client, state-file
persistence across a restart, and accounts provisioned from a file."""

from __future__ import annotations

import json
from pathlib import Path

import ccxt
import httpx
import pytest
from sim_helpers import T0

from tradefleet.market.exchange import make_exchange
from tradefleet.sim import BackgroundServer, SimClock, create_app
from tradefleet.sim.accounts import AccountSpecError, load_accounts_file

SYMBOL = "BTC/USDT"


def add_fault(sim, **rule) -> dict:
    reply = httpx.post(f"{sim.base_url}/sim/faults", json=rule)
    assert reply.status_code == 201, reply.text
    return reply.json()


def orders_of(sim, key: str) -> list[dict]:
    return httpx.get(f"{sim.base_url}/sim/accounts/{key}").json()["orders"]


def test_error_after_applying_loses_the_reply_but_the_order_exists(make_account, sim) -> None:
    ex, key = make_account()
    ex.load_markets()
    add_fault(sim, kind="error", when="after", count=1)
    with pytest.raises(ccxt.NetworkError):
        ex.create_order(SYMBOL, "market", "buy", 0.001, None, {"clientOrderId": "lost-reply-1"})
    found = ex.fetch_order(None, SYMBOL, {"origClientOrderId": "lost-reply-1"})
    assert found["status"] == "closed" and found["filled"] == 0.001
    assert len(orders_of(sim, key)) == 1
    assert httpx.get(f"{sim.base_url}/sim/faults").json() == {"faults": []}  # spent


def test_error_before_applying_places_nothing(make_account, sim) -> None:
    ex, key = make_account()
    ex.load_markets()
    add_fault(sim, kind="error", when="before", count=2)
    for _ in range(2):
        with pytest.raises(ccxt.ExchangeNotAvailable):
            ex.create_order(SYMBOL, "market", "buy", 0.001, None, {"clientOrderId": "never-1"})
    with pytest.raises(ccxt.OrderNotFound):
        ex.fetch_order(None, SYMBOL, {"origClientOrderId": "never-1"})
    assert ex.create_order(SYMBOL, "market", "buy", 0.001, None, {"clientOrderId": "never-1"})["status"] == "closed"
    assert len(orders_of(sim, key)) == 1


def test_timeout_after_applying(make_account, sim) -> None:
    ex, key = make_account()
    ex.load_markets()
    ex.timeout = 500
    add_fault(sim, kind="timeout", when="after", delay_s=2)
    with pytest.raises(ccxt.RequestTimeout):
        ex.create_order(SYMBOL, "limit", "buy", 0.001, 40000, {"clientOrderId": "slow-1"})
    ex.timeout = 10000
    assert ex.fetch_order(None, SYMBOL, {"origClientOrderId": "slow-1"})["status"] == "open"
    cancelled = add_fault(sim, kind="error", when="after", paths=["DELETE /api/v3/order"])
    assert cancelled["paths"] == ["DELETE /api/v3/order"]
    with pytest.raises(ccxt.NetworkError):
        ex.cancel_order(None, SYMBOL, {"origClientOrderId": "slow-1"})
    assert [o["status"] for o in orders_of(sim, key)] == ["CANCELED"]


def test_rate_limit_is_429_with_retry_after(make_account, sim) -> None:
    ex, _ = make_account()
    ex.load_markets()
    add_fault(sim, kind="rate_limit", paths=["/api/v3/account"])
    with pytest.raises(ccxt.DDoSProtection, match="429"):
        ex.fetch_balance()
    assert ex.last_response_headers["Retry-After"] == "1"
    assert json.loads(ex.last_http_response)["code"] == -1003
    assert ex.fetch_balance()["USDT"]["free"] == 10000


def test_down_until_cleared_and_admin_paths_untouched(make_account, sim) -> None:
    ex, key = make_account()
    add_fault(sim, kind="down", count=None)
    for _ in range(3):
        with pytest.raises(ccxt.ExchangeNotAvailable):
            ex.fetch_ticker(SYMBOL)
    assert httpx.get(f"{sim.base_url}/sim/accounts/{key}").status_code == 200
    assert httpx.get(f"{sim.base_url}/sim/faults").json()["faults"][0]["hits"] == 3
    assert httpx.delete(f"{sim.base_url}/sim/faults").json() == {"cleared": 1}
    assert ex.fetch_ticker(SYMBOL)["symbol"] == SYMBOL


def test_bad_fault_rules_are_refused(sim) -> None:
    for body, field in [({"kind": "boom"}, "kind"), ({"kind": "error", "count": 0}, "count"),
                        ({"kind": "rate_limit", "when": "after"}, "when"), ({"kind": "error", "paths": "x"}, "paths"),
                        ({"kind": "timeout", "delay_s": -1}, "delay_s")]:
        reply = httpx.post(f"{sim.base_url}/sim/faults", json=body)
        assert reply.status_code == 400 and reply.json()["msg"].startswith(field + ":")
    assert httpx.get(f"{sim.base_url}/sim/faults").json() == {"faults": []}


def test_state_file_keeps_accounts_orders_and_trades_across_a_restart(market_data, tmp_path: Path) -> None:
    state = tmp_path / "sim-state.json"
    spec = {"api_key": "persist-key", "secret": "persist-secret", "balances": {"USDT": "5000"}}
    creds = {"apiKey": "persist-key", "secret": "persist-secret"}
    with BackgroundServer(create_app(data=market_data, clock=SimClock(T0, speed=0), accounts=[spec],
                                     state_file=state)) as server:
        ex = make_exchange("binance", api_base_url=server.base_url, credentials=creds)
        bought = ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "p-1"})
        resting = ex.create_order(SYMBOL, "limit", "buy", 0.01, 40000, {"clientOrderId": "p-2"})
        before = ex.fetch_balance()
    with BackgroundServer(create_app(data=market_data, clock=SimClock(T0, speed=0), state_file=state)) as server:
        ex = make_exchange("binance", api_base_url=server.base_url, credentials=creds)
        after = ex.fetch_balance()
        assert (after["USDT"], after["BTC"]) == (before["USDT"], before["BTC"])
        assert [o["id"] for o in ex.fetch_open_orders(SYMBOL)] == [resting["id"]]
        assert [t["order"] for t in ex.fetch_my_trades(SYMBOL)] == [bought["id"]]
        new = ex.create_order(SYMBOL, "market", "buy", 0.001)
        assert int(new["id"]) > int(resting["id"])  # ids continue, never reused


def test_accounts_file(tmp_path: Path) -> None:
    good = tmp_path / "accounts.json"
    good.write_text(json.dumps([{"api_key": "a", "secret": "b", "balances": {"USDT": 1}}]))
    assert load_accounts_file(good)[0]["api_key"] == "a"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"api_key": "a", "secret": "b", "balances": {"USDT": "lots"}}]))
    with pytest.raises(AccountSpecError, match="balances.USDT"):
        load_accounts_file(bad)


def test_enforced_rate_limits_answer_429_like_binance(market_data) -> None:
    spec = {"api_key": "rl-key", "secret": "rl-secret", "balances": {"USDT": "10000"}}
    app = create_app(data=market_data, clock=SimClock(T0, speed=0), accounts=[spec], weight_limit=70,
                     order_limit_10s=2)
    with BackgroundServer(app) as server:
        ex = make_exchange("binance", api_base_url=server.base_url,
                           credentials={"apiKey": "rl-key", "secret": "rl-secret"})
        ex.enableRateLimit = False
        ex.load_markets()  # exchangeInfo: weight 20
        placed = 0
        with pytest.raises(ccxt.DDoSProtection, match="-1015"):
            for _ in range(3):  # at most 2 new orders per 10 s
                ex.create_order(SYMBOL, "market", "buy", 0.001)
                placed += 1
        assert placed == 2
        served = 0
        with pytest.raises(ccxt.DDoSProtection, match="-1003"):
            for _ in range(10):  # account: weight 20 each; a minute boundary resets the count at most once
                ex.fetch_balance()
                served += 1
        assert served <= 6
        assert int(ex.last_response_headers["Retry-After"]) in range(1, 61)
