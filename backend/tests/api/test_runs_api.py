"""``/api/v1/runs``: create, list, read, start and stop runs; validation; owner scoping.

The market catalog is loaded from the exchange simulator through ccxt (``catalog`` fixture), exactly
as the worker loads it; every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from tradefleet.models import (
    ExchangeMarket,
    Order,
    OrderSide,
    OrderStatus,
    OrderType,
    Run,
    RunEvent,
    RunStatus,
)

RUNS = "/api/v1/runs"

SMA = {"strategy": "sma_cross", "symbol": "BTC/USDT", "timeframe": "1h", "stake": 1000}


# --- helpers -------------------------------------------------------------------------------------


def row_counts(engine: Engine) -> tuple[int, int]:
    """(runs, run events) in the database, read in a short transaction of its own."""
    with Session(engine) as s:
        runs = s.exec(select(func.count()).select_from(Run)).one()
        events = s.exec(select(func.count()).select_from(RunEvent)).one()
    return runs, events


def stored_run(engine: Engine, run_id: str) -> Run:
    with Session(engine) as s:
        run = s.get(Run, uuid.UUID(run_id))
        assert run is not None
        s.expunge(run)
        return run


def event_kinds(engine: Engine, run_id: str) -> list[str]:
    with Session(engine) as s:
        return list(s.exec(select(RunEvent.kind).where(RunEvent.run_id == uuid.UUID(run_id))
                           .order_by(RunEvent.id)).all())


def create(client: TestClient, **overrides: Any) -> dict[str, Any]:
    response = client.post(RUNS, json={**SMA, **overrides})
    assert response.status_code == 201, response.text
    return response.json()


def add_order(engine: Engine, run_id: str, *, status: OrderStatus, n: int) -> uuid.UUID:
    """An order of the run as the broker would have written it."""
    order = Order(run_id=uuid.UUID(run_id), client_order_id=f"test-{run_id[:8]}-{n}", symbol="BTC/USDT",
                  side=OrderSide.buy, type=OrderType.limit, amount=0.01, price=40000.0, status=status,
                  reason="enter_long", signal_candle_ms=1_704_240_000_000 + n * 3_600_000)
    with Session(engine) as s:
        s.add(order)
        s.commit()
        return order.id


# --- the catalog really comes from the simulator -----------------------------------------------


def test_catalog_fixture_loads_the_simulator_markets_through_ccxt(catalog, db):
    with Session(db) as s:
        markets = {m.symbol: m for m in s.exec(select(ExchangeMarket)
                                                .where(ExchangeMarket.exchange == "binance")).all()}
    assert catalog == len(markets) == 6
    assert set(markets) == {"BTC/USDT", "ETH/USDT", "BNB/USDT", "SOL/USDT", "XRP/USDT", "DOGE/USDT"}
    btc = markets["BTC/USDT"]
    assert (btc.base, btc.quote, btc.active, btc.min_cost) == ("BTC", "USDT", True, 5.0)
    assert btc.price_step == pytest.approx(0.01) and btc.amount_step == pytest.approx(0.00001)
    assert "1h" in btc.timeframes and "1m" in btc.timeframes and "7m" not in btc.timeframes


# --- happy path --------------------------------------------------------------------------------


def test_create_fills_param_defaults_and_funds_the_wallet(user_client, catalog, db):
    response = user_client.post(RUNS, json={**SMA, "params": {"fast": 5}})

    assert response.status_code == 201, response.text
    body = response.json()
    uuid.UUID(body["id"])
    assert body["strategy"] == "sma_cross"
    assert body["params"] == {"fast": 5, "slow": 30}  # slow's default filled in
    assert (body["exchange"], body["symbol"], body["timeframe"], body["mode"]) == ("binance", "BTC/USDT",
                                                                                 "1h", "paper")
    assert body["status"] == "created" and body["status_reason"] is None
    assert body["stake"] == 1000 and body["cash"] == body["stake"]
    assert body["position_amount"] == 0 and body["equity"] == 1000
    assert body["pnl"] == 0 and body["pnl_pct"] == 0 and body["realised_pnl"] == 0
    assert body["started_at"] is None and body["stopped_at"] is None

    run = stored_run(db, body["id"])
    assert run.owner_id == user_client.user.id
    assert run.params == {"fast": 5, "slow": 30}
    assert run.status == RunStatus.created and run.cash == 1000.0
    assert event_kinds(db, body["id"]) == ["created"]


def test_create_without_params_takes_every_default(user_client, catalog):
    body = create(user_client, strategy="rsi_reversion", symbol="ETH/USDT", params=None)
    assert body["params"] == {"period": 14, "oversold": 30.0, "overbought": 70.0}


def test_stake_equal_to_the_market_minimum_is_accepted(user_client, catalog):
    body = create(user_client, symbol="DOGE/USDT", timeframe="5m", stake=5)
    assert body["stake"] == 5 and body["cash"] == 5 and body["timeframe"] == "5m"


def test_list_and_get(user_client, catalog, make_user, auth_headers, app):
    first = create(user_client)
    second = create(user_client, strategy="rsi_reversion", symbol="SOL/USDT", stake=50)
    other, _ = make_user()
    with TestClient(app, headers=auth_headers(other)) as other_client:
        create(other_client)  # someone else's run is not listed

    listed = user_client.get(RUNS)
    assert listed.status_code == 200
    body = listed.json()
    assert body["count"] == 2
    assert {r["id"] for r in body["data"]} == {first["id"], second["id"]}
    assert body["data"][0]["id"] == second["id"]  # newest first

    page = user_client.get(RUNS, params={"skip": 1, "limit": 1}).json()
    assert page["count"] == 2 and [r["id"] for r in page["data"]] == [first["id"]]

    got = user_client.get(f"{RUNS}/{second['id']}")
    assert got.status_code == 200
    assert got.json()["symbol"] == "SOL/USDT" and got.json()["stake"] == 50
    assert got.json() == second


def test_start_stop_lifecycle_and_events(user_client, catalog, db):
    run = create(user_client)
    run_id = run["id"]

    started = user_client.post(f"{RUNS}/{run_id}/start")
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "running" and started.json()["started_at"] is not None
    assert stored_run(db, run_id).status == RunStatus.running

    again = user_client.post(f"{RUNS}/{run_id}/start")
    assert again.status_code == 409
    assert "already running" in again.json()["detail"]
    assert event_kinds(db, run_id) == ["created", "started"]  # the refused start recorded nothing

    open_1 = add_order(db, run_id, status=OrderStatus.open, n=1)
    open_2 = add_order(db, run_id, status=OrderStatus.open, n=2)
    filled = add_order(db, run_id, status=OrderStatus.filled, n=3)

    stopped = user_client.post(f"{RUNS}/{run_id}/stop")
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["status"] == "stopped" and stopped.json()["stopped_at"] is not None
    orders = {o["id"]: o for o in user_client.get(f"{RUNS}/{run_id}/orders").json()}
    assert orders[str(open_1)]["status"] == "cancelled"
    assert orders[str(open_1)]["status_reason"] == "run stopped"
    assert orders[str(open_2)]["status"] == "cancelled"
    assert orders[str(filled)]["status"] == "filled"  # only open orders are cancelled

    stopped_at = stopped.json()["stopped_at"]
    again = user_client.post(f"{RUNS}/{run_id}/stop")
    assert again.status_code == 200
    assert again.json()["status"] == "stopped" and again.json()["stopped_at"] == stopped_at

    events = user_client.get(f"{RUNS}/{run_id}/events")
    assert events.status_code == 200
    kinds = [e["kind"] for e in events.json()]
    assert kinds == ["created", "started", "stopped"]  # the second stop is a no-op
    assert "cancelled 2 open order(s)" in events.json()[2]["message"]
    assert all(e["level"] == "info" for e in events.json())


def test_a_stopped_run_can_be_started_again(user_client, catalog, db):
    run_id = create(user_client)["id"]
    assert user_client.post(f"{RUNS}/{run_id}/start").status_code == 200
    assert user_client.post(f"{RUNS}/{run_id}/stop").status_code == 200

    restarted = user_client.post(f"{RUNS}/{run_id}/start")
    assert restarted.status_code == 200
    assert restarted.json()["status"] == "running" and restarted.json()["stopped_at"] is None
    assert event_kinds(db, run_id) == ["created", "started", "stopped", "started"]


def test_children_of_a_fresh_run_are_empty_lists(user_client, catalog):
    run_id = create(user_client)["id"]
    for child in ("orders", "fills", "trades", "equity"):
        response = user_client.get(f"{RUNS}/{run_id}/{child}")
        assert response.status_code == 200 and response.json() == [], child


def test_unknown_run_id_is_404_and_bad_id_is_422(user_client, catalog):
    missing = user_client.get(f"{RUNS}/{uuid.uuid4()}")
    assert missing.status_code == 404 and missing.json() == {"detail": "run not found"}
    bad = user_client.get(f"{RUNS}/not-a-uuid")
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "path.run_id"


def test_active_run_limit_is_409_and_writes_nothing(user_client, catalog, db, settings_env):
    settings_env(MAX_RUNS_PER_USER=2)
    create(user_client)
    create(user_client)
    before = row_counts(db)
    response = user_client.post(RUNS, json=SMA)
    assert response.status_code == 409 and "limit 2" in response.json()["detail"]
    assert row_counts(db) == before


def test_catalog_not_loaded_is_503_and_writes_nothing(user_client, db):
    before = row_counts(db)
    response = user_client.post(RUNS, json=SMA)
    assert response.status_code == 503
    assert "not loaded" in response.json()["detail"]
    assert row_counts(db) == before == (0, 0)


# --- bad input: 422 naming the field, nothing written -------------------------------------------

BAD_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("unknown strategy", {**SMA, "strategy": "no_such_strategy"}, "strategy"),
    ("fast below its minimum", {**SMA, "params": {"fast": 1}}, "params.fast"),
    ("fast above its maximum", {**SMA, "params": {"fast": 201, "slow": 400}}, "params.fast"),
    ("slow above its maximum", {**SMA, "params": {"slow": 401}}, "params.slow"),
    ("string for an int", {**SMA, "params": {"fast": "10"}}, "params.fast"),
    ("bool for an int", {**SMA, "params": {"fast": True}}, "params.fast"),
    ("fractional float for an int", {**SMA, "params": {"fast": 10.5}}, "params.fast"),
    ("null for an int", {**SMA, "params": {"fast": None}}, "params.fast"),
    ("unknown param", {**SMA, "params": {"fastest": 3}}, "params.fastest"),
    ("fast >= slow", {**SMA, "params": {"fast": 30, "slow": 30}}, "params.fast"),
    ("fast > slow", {**SMA, "params": {"fast": 50, "slow": 20}}, "params.fast"),
    ("decimal param as string", {**SMA, "strategy": "rsi_reversion", "params": {"oversold": "30"}},
     "params.oversold"),
    ("decimal param out of range", {**SMA, "strategy": "rsi_reversion", "params": {"overbought": 99.5}},
     "params.overbought"),
    ("params not an object", {**SMA, "params": [1, 2]}, "params"),
    ("unknown exchange", {**SMA, "exchange": "kraken"}, "exchange"),
    ("unknown symbol", {**SMA, "symbol": "NOPE/USDT"}, "symbol"),
    ("exchange-native symbol", {**SMA, "symbol": "BTCUSDT"}, "symbol"),
    ("timeframe the market lacks", {**SMA, "timeframe": "7m"}, "timeframe"),
    ("negative stake", {**SMA, "stake": -10}, "stake"),
    ("zero stake", {**SMA, "stake": 0}, "stake"),
    ("stake below the market minimum", {**SMA, "stake": 4.99}, "stake"),
    ("stake not a number", {**SMA, "stake": "lots"}, "stake"),
    ("absurd stake", {**SMA, "stake": 1e13}, "stake"),
    ("400-digit stake", {**SMA, "stake": 10**400}, "stake"),
    ("mode live without an exchange account", {**SMA, "mode": "live"}, "exchange_account_id"),
    ("mode bogus", {**SMA, "mode": "bogus"}, "mode"),
    ("missing strategy", {k: v for k, v in SMA.items() if k != "strategy"}, "strategy"),
    ("missing symbol", {k: v for k, v in SMA.items() if k != "symbol"}, "symbol"),
    ("missing timeframe", {k: v for k, v in SMA.items() if k != "timeframe"}, "timeframe"),
    ("missing stake", {k: v for k, v in SMA.items() if k != "stake"}, "stake"),
]


@pytest.mark.parametrize(("body", "field"), [(b, f) for _, b, f in BAD_BODIES],
                         ids=[name for name, _, _ in BAD_BODIES])
def test_bad_run_is_422_naming_the_field_and_writes_nothing(user_client, catalog, db, body, field):
    before = row_counts(db)

    response = user_client.post(RUNS, json=body)

    assert response.status_code == 422, response.text
    payload = response.json()
    assert payload["errors"][0]["field"] == field, payload
    assert payload["errors"][0]["message"]
    assert isinstance(payload["detail"], str) and payload["detail"].startswith(f"{field}: ")
    assert row_counts(db) == before


def test_empty_body_names_every_missing_field(user_client, catalog, db):
    before = row_counts(db)
    response = user_client.post(RUNS, json={})
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"strategy", "symbol", "timeframe", "stake"}
    assert row_counts(db) == before


@pytest.mark.parametrize("raw", ['{"strategy": "sma_cross",', "not json", ""],
                         ids=["truncated", "garbage", "empty"])
def test_malformed_body_is_422_on_body(user_client, catalog, db, raw):
    before = row_counts(db)
    response = user_client.post(RUNS, content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "body"
    assert row_counts(db) == before


def test_huge_integer_for_a_decimal_param_is_422_not_500(user_client, catalog, db, app):
    """JSON integers have no size limit; ``float()`` of a 400-digit one overflows."""
    before = row_counts(db)
    raw = json.dumps({**SMA, "strategy": "rsi_reversion"})[:-1] + ', "params": {"oversold": 1' + "0" * 400 + "}}"
    with TestClient(app, raise_server_exceptions=False, headers=dict(user_client.headers)) as c:
        response = c.post(RUNS, content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "params.oversold"
    assert row_counts(db) == before


def test_error_messages_are_useful(user_client, catalog):
    def message(body: dict[str, Any]) -> str:
        return user_client.post(RUNS, json=body).json()["errors"][0]["message"]

    assert "sma_cross" in message({**SMA, "strategy": "nope"})  # lists what is available
    assert "between 2 and 200" in message({**SMA, "params": {"fast": 1}})
    assert "must be below slow" in message({**SMA, "params": {"fast": 40}})
    assert "unknown parameter" in message({**SMA, "params": {"fastest": 3}})
    assert "1h" in message({**SMA, "timeframe": "7m"})  # lists the available timeframes
    assert "5" in message({**SMA, "stake": 1})  # the market minimum


# --- owner scoping -----------------------------------------------------------------------------

READ_ROUTES = ["", "/orders", "/fills", "/trades", "/events", "/equity"]
WRITE_ROUTES = ["/start", "/stop"]


@pytest.mark.parametrize("a_status", ["created", "running"])
def test_another_users_run_is_404_on_every_route(user_client, catalog, db, make_user, auth_headers, app,
                                                 a_status):
    run_id = create(user_client)["id"]
    if a_status == "running":
        assert user_client.post(f"{RUNS}/{run_id}/start").status_code == 200
    before_events = event_kinds(db, run_id)
    other, _ = make_user()

    with TestClient(app, headers=auth_headers(other)) as b:
        for suffix in READ_ROUTES:
            response = b.get(f"{RUNS}/{run_id}{suffix}")
            assert response.status_code == 404, (suffix, response.text)
            assert response.json() == {"detail": "run not found"}
        for suffix in WRITE_ROUTES:
            response = b.post(f"{RUNS}/{run_id}{suffix}")
            assert response.status_code == 404, (suffix, response.text)
            assert response.json() == {"detail": "run not found"}
        assert b.get(RUNS).json() == {"data": [], "count": 0}

    run = stored_run(db, run_id)
    assert run.status == RunStatus(a_status)
    assert run.stopped_at is None
    assert event_kinds(db, run_id) == before_events


def test_unauthenticated_is_401_on_every_route(client, catalog, user_client, db):
    run_id = create(user_client)["id"]
    before = row_counts(db)
    for suffix in READ_ROUTES:
        response = client.get(f"{RUNS}/{run_id}{suffix}")
        assert response.status_code == 401, suffix
        assert response.headers["WWW-Authenticate"] == "Bearer"
    for suffix in WRITE_ROUTES:
        assert client.post(f"{RUNS}/{run_id}{suffix}").status_code == 401, suffix
    assert client.get(RUNS).status_code == 401
    assert client.post(RUNS, json=SMA).status_code == 401
    bad_token = client.get(RUNS, headers={"Authorization": "Bearer not-a-token"})
    assert bad_token.status_code == 401
    assert row_counts(db) == before
    assert stored_run(db, run_id).status == RunStatus.created
