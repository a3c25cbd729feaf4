"""The pages take their market options from ``GET /api/v1/markets`` and ask only for the rows they show.

Through the real Nginx in front of the real platform (its worker loaded binance's catalog from the
simulator): the run form on the strategies page, the backtest form and the exchange-key form offer exactly
the catalog's exchanges, symbols and timeframes (the backtest form only the fixed-length ones); a run with
more orders than its page shows is asked for the newest 100, newest first, and shows them; no page reads the
OpenAPI document to find out which routes exist.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from sqlmodel import Session

from tradefleet.models import Order, OrderSide, OrderStatus, OrderType
from tradefleet.models._types import utcnow

from test_flows import login

ORDERS_SHOWN = 100
CANDLE_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def catalog_of(site: Any, email: str, password: str) -> dict:
    reply = site.login_api(email, password).get("/markets")
    assert reply.status_code == 200, reply.text
    [binance] = [e for e in reply.json()["exchanges"] if e["exchange"] == "binance"]
    assert binance["loaded"] and binance["markets"] and binance["timeframes"]
    return reply.json()


def options(page: Any, selector: str) -> list[str]:
    return page.locator(selector).evaluate_all("(nodes) => nodes.map((n) => n.value)")


def test_forms_offer_the_catalogs_symbols_and_timeframes(page, site):
    site.wait_market_catalog()
    email, password = site.create_user()
    catalog = catalog_of(site, email, password)
    exchanges = [e["exchange"] for e in catalog["exchanges"]]
    binance = catalog["exchanges"][exchanges.index("binance")]
    symbols = [m["symbol"] for m in binance["markets"]]
    timeframes = [tf["timeframe"] for tf in binance["timeframes"]]
    fixed = [tf["timeframe"] for tf in binance["timeframes"] if tf["fixed_length"]]
    assert "1M" in timeframes and "1M" not in fixed, "the simulator serves Binance's calendar month"
    login(page, email, password)

    page.goto("/strategies.html#sma_cross")
    page.locator("body[data-ready]").wait_for()
    card = "#strategy-sma_cross"
    assert options(page, f"{card} select[name=exchange] option") == exchanges
    assert options(page, f"{card} datalist option") == symbols
    assert options(page, f"{card} select[name=timeframe] option") == timeframes
    # The strategy's own timeframe is preselected; the symbol is one of the catalog's.
    assert page.locator(f"{card} select[name=timeframe]").input_value() == "1h"
    assert page.locator(f"{card} input[name=symbol]").input_value() in symbols
    # The stake's hint names the chosen market's minimum order, from the catalog's rules.
    page.locator(card).get_by_label("Symbol").fill("DOGE/USDT")
    doge = next(m for m in binance["markets"] if m["symbol"] == "DOGE/USDT")
    assert f"{doge['min_cost']:g} USDT" in page.locator(f"{card} #s-sma_cross-stake-hint").inner_text()

    page.goto("/backtests.html")
    page.locator("body[data-ready]").wait_for()
    assert options(page, "#bt-exchange option") == exchanges
    assert options(page, "#bt-symbols option") == symbols
    assert options(page, "#bt-timeframe option") == fixed

    page.goto("/keys.html")
    page.locator("body[data-ready]").wait_for()
    assert options(page, "#exchange option") == exchanges


def _add_orders(site: Any, run_id: str, n: int) -> list[int]:
    """``n`` filled orders of the run, created a second apart; returns their signal candle times, oldest first."""
    engine = create_engine(make_url(site.database_url).set(drivername="postgresql+psycopg"), poolclass=NullPool)
    start = utcnow() - timedelta(hours=1)
    times = [CANDLE_MS + i * 60_000 for i in range(n)]
    try:
        with Session(engine) as session:
            session.add_all(Order(run_id=uuid.UUID(run_id), client_order_id=f"page-{run_id[:8]}-{i}", symbol="BTC/USDT",
                                  side=OrderSide.buy if i % 2 == 0 else OrderSide.sell, type=OrderType.market,
                                  amount=0.001, status=OrderStatus.filled, reason="enter_long",
                                  signal_candle_ms=t, created_at=start + timedelta(seconds=i))
                            for i, t in enumerate(times))
            session.commit()
    finally:
        engine.dispose()
    return times


def test_the_order_list_asks_for_the_newest_it_shows(page, site):
    site.wait_market_catalog()
    email, password = site.create_user()
    api = site.login_api(email, password)
    created = api.post("/runs", json={"strategy": "sma_cross", "exchange": "binance", "symbol": "BTC/USDT",
                                      "timeframe": "1h", "mode": "paper", "stake": 1000})
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    times = _add_orders(site, run_id, ORDERS_SHOWN + 30)

    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    login(page, email, password)
    page.goto(f"/run.html?id={run_id}")
    page.locator("body[data-ready]").wait_for()
    rows = page.locator("#orders tbody tr")
    rows.nth(ORDERS_SHOWN - 1).wait_for()

    orders = [urlsplit(url) for url in requested if urlsplit(url).path == f"/api/v1/runs/{run_id}/orders"]
    assert orders, requested
    for url in orders:
        assert parse_qs(url.query) == {"limit": [str(ORDERS_SHOWN)], "order": ["desc"]}, url.query
    assert rows.count() == ORDERS_SHOWN
    # Newest first: the first row is the last order's signal candle, the 100th the 100th newest.
    shown = rows.locator("td:first-child time").evaluate_all("(nodes) => nodes.map((n) => n.getAttribute('datetime'))")
    expected = [_iso(t) for t in reversed(times)][:ORDERS_SHOWN]
    assert shown == expected
    # The other lists ask for what the page shows too, newest first.
    events = [parse_qs(urlsplit(u).query) for u in requested if urlsplit(u).path.endswith(f"/runs/{run_id}/events")]
    trades = [parse_qs(urlsplit(u).query) for u in requested if urlsplit(u).path.endswith(f"/runs/{run_id}/trades")]
    assert events and all(q["order"] == ["desc"] and q["limit"] == ["200"] for q in events)
    assert trades and all(q["order"] == ["desc"] and q["limit"] == ["100"] for q in trades)


def _iso(ms: int) -> str:
    """Epoch ms as the page's ``<time datetime>`` writes it (``Date.toISOString``)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_no_page_reads_the_openapi_document(page, site):
    site.wait_market_catalog()
    email, password = site.create_user(role="admin")
    api = site.login_api(email, password)
    run = api.post("/runs", json={"strategy": "sma_cross", "exchange": "binance", "symbol": "BTC/USDT",
                                  "timeframe": "1h", "mode": "paper", "stake": 1000}).json()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(urlsplit(request.url).path))
    login(page, email, password)
    for path in ("/", "/strategies.html", "/backtests.html", f"/run.html?id={run['id']}", "/keys.html",
                 "/account.html", "/admin/", "/admin/runs.html", "/admin/strategies.html"):
        page.goto(path)
        page.locator("body[data-ready]").wait_for()
    assert "/api/v1/markets" in requested
    assert "/api/v1/openapi.json" not in requested
