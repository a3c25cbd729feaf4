"""``GET /api/v1/markets``: the market catalog the run and backtest forms offer.

The catalog is loaded from the exchange simulator through ccxt (``catalog`` fixture), as the worker loads
it; every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from tradefleet.times import timeframe_ms
from tradefleet.models import ExchangeMarket

MARKETS = "/api/v1/markets"
RUNS = "/api/v1/runs"
BACKTESTS = "/api/v1/backtests"


def binance(body: dict) -> dict:
    [entry] = [e for e in body["exchanges"] if e["exchange"] == "binance"]
    return entry


def test_outsiders_get_401(client):
    assert client.get(MARKETS).status_code == 401
    forged = client.get(MARKETS, headers={"Authorization": "Bearer not-a-token"})
    assert forged.status_code == 401 and forged.headers["WWW-Authenticate"] == "Bearer"


def test_before_a_worker_loaded_the_markets_the_exchange_is_listed_empty(user_client):
    response = user_client.get(MARKETS)
    assert response.status_code == 200, response.text
    assert response.json() == {"exchanges": [{"exchange": "binance", "loaded": False, "updated_at": None,
                                              "timeframes": [], "markets": []}]}


def test_symbols_with_their_rules_from_the_stored_catalog(user_client, catalog, db: Engine):
    response = user_client.get(MARKETS)
    assert response.status_code == 200, response.text
    entry = binance(response.json())
    assert entry["loaded"] is True and entry["updated_at"]
    symbols = [m["symbol"] for m in entry["markets"]]
    assert symbols == sorted(symbols) and len(symbols) == catalog == 6
    assert set(symbols) == {"BTC/USDT", "ETH/USDT", "BNB/USDT", "SOL/USDT", "XRP/USDT", "DOGE/USDT"}
    with Session(db) as s:
        rows = {m.symbol: m for m in s.exec(select(ExchangeMarket)).all()}
    for market in entry["markets"]:
        row = rows[market["symbol"]]
        assert market == {"symbol": row.symbol, "base": row.base, "quote": row.quote, "taker": row.taker,
                          "maker": row.maker, "amount_step": row.amount_step, "price_step": row.price_step,
                          "min_amount": row.min_amount, "min_cost": row.min_cost}
    btc = next(m for m in entry["markets"] if m["symbol"] == "BTC/USDT")
    assert (btc["base"], btc["quote"], btc["min_cost"]) == ("BTC", "USDT", 5.0)


def test_timeframes_are_the_exchanges_shortest_first_with_their_lengths(user_client, catalog, db: Engine):
    entry = binance(user_client.get(MARKETS).json())
    with Session(db) as s:
        stored = s.exec(select(ExchangeMarket).where(ExchangeMarket.symbol == "BTC/USDT")).one().timeframes
    names = [tf["timeframe"] for tf in entry["timeframes"]]
    assert set(names) == set(stored) and {"1m", "5m", "1h", "1d"} <= set(names)
    lengths = [tf["length_ms"] for tf in entry["timeframes"]]
    assert lengths == sorted(lengths)
    for tf in entry["timeframes"]:
        assert tf["length_ms"] == timeframe_ms(tf["timeframe"])
        assert tf["fixed_length"] is (not tf["timeframe"].endswith("M"))
    by_name = {tf["timeframe"]: tf for tf in entry["timeframes"]}
    assert by_name["1m"]["length_ms"] == 60_000 and by_name["1h"]["length_ms"] == 3_600_000


def test_inactive_markets_are_not_offered(user_client, catalog, db: Engine):
    with Session(db) as s:
        row = s.get(ExchangeMarket, ("binance", "XRP/USDT"))
        row.active = False
        s.add(row)
        s.commit()
    symbols = {m["symbol"] for m in binance(user_client.get(MARKETS).json())["markets"]}
    assert "XRP/USDT" not in symbols and "BTC/USDT" in symbols
    refused = user_client.post(RUNS, json={"strategy": "sma_cross", "symbol": "XRP/USDT", "timeframe": "1h",
                                           "stake": 1000})
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "symbol"


def test_what_the_catalog_offers_a_run_accepts(user_client, catalog):
    entry = binance(user_client.get(MARKETS).json())
    offered = {tf["timeframe"] for tf in entry["timeframes"]}
    for timeframe in ("1m", "1h"):
        assert timeframe in offered
        created = user_client.post(RUNS, json={"strategy": "sma_cross", "exchange": entry["exchange"],
                                               "symbol": entry["markets"][0]["symbol"], "timeframe": timeframe,
                                               "stake": 1000})
        assert created.status_code == 201, created.text
    assert "7m" not in offered
    refused = user_client.post(RUNS, json={"strategy": "sma_cross", "symbol": "BTC/USDT", "timeframe": "7m",
                                           "stake": 1000})
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "timeframe"


def test_every_enabled_exchange_is_listed_in_order(user_client, catalog, settings_env):
    settings_env(EXCHANGES_ENABLED="kraken,binance")
    body = user_client.get(MARKETS).json()
    assert [e["exchange"] for e in body["exchanges"]] == ["kraken", "binance"]
    kraken = body["exchanges"][0]
    assert (kraken["loaded"], kraken["timeframes"], kraken["markets"]) == (False, [], [])
    assert binance(body)["loaded"] is True
