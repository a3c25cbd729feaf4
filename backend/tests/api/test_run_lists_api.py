"""The lists of a run (orders, fills, trades, events): oldest first by default, newest first with
``order=desc``, ``skip``/``limit`` counted in the chosen direction; an unknown direction is a 422 naming the field
``query.order``. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from tradefleet.models import Fill, Order, OrderSide, OrderStatus, OrderType, RunEvent, Trade, TradeStatus
from tradefleet.models._types import utcnow

RUNS = "/api/v1/runs"
CANDLE_MS = 1_704_240_000_000
N = 7


@pytest.fixture
def run_with_rows(user_client, catalog, db: Engine) -> str:
    """A run of ``user_client`` with ``N`` orders (created a second apart), one fill per order, ``N``
    closed trades and ``N`` events after its ``created`` event; returns its id."""
    created = user_client.post(RUNS, json={"strategy": "sma_cross", "symbol": "BTC/USDT", "timeframe": "1h",
                                           "stake": 1000})
    assert created.status_code == 201, created.text
    run_id = uuid.UUID(created.json()["id"])
    start = utcnow()
    with Session(db) as s:
        for n in range(N):
            order = Order(run_id=run_id, client_order_id=f"list-{run_id.hex[:8]}-{n}", symbol="BTC/USDT",
                          side=OrderSide.buy, type=OrderType.market, amount=0.01, status=OrderStatus.filled,
                          reason="enter_long", signal_candle_ms=CANDLE_MS + n * 3_600_000,
                          created_at=start + timedelta(seconds=n))
            s.add(order)
            s.flush()
            s.add(Fill(order_id=order.id, run_id=run_id, side=OrderSide.buy, time_ms=CANDLE_MS + n * 3_600_000,
                       price=40_000.0 + n, amount=0.01, cost=400.0, fee=0.4, fee_currency="USDT"))
            s.add(Trade(run_id=run_id, status=TradeStatus.closed, amount=0.01,
                        entry_time_ms=CANDLE_MS + n * 3_600_000, entry_price=40_000.0, entry_fee=0.4,
                        exit_time_ms=CANDLE_MS + n * 3_600_000 + 60_000, exit_price=40_100.0, exit_fee=0.4,
                        exit_reason="exit_long", pnl=0.2, pnl_pct=0.05))
            s.add(RunEvent(run_id=run_id, kind="log", message=f"line {n}"))
            s.flush()
        s.commit()
    return str(run_id)


def test_orders_newest_first_with_the_limit_asked(user_client, run_with_rows):
    oldest_first = user_client.get(f"{RUNS}/{run_with_rows}/orders").json()
    assert [o["signal_candle_ms"] for o in oldest_first] == [CANDLE_MS + n * 3_600_000 for n in range(N)]
    newest = user_client.get(f"{RUNS}/{run_with_rows}/orders", params={"order": "desc", "limit": 3})
    assert newest.status_code == 200, newest.text
    assert [o["id"] for o in newest.json()] == [o["id"] for o in reversed(oldest_first)][:3]
    # skip counts from the newest too: the next page continues where the first ended
    following = user_client.get(f"{RUNS}/{run_with_rows}/orders", params={"order": "desc", "limit": 3, "skip": 3})
    assert [o["id"] for o in following.json()] == [o["id"] for o in reversed(oldest_first)][3:6]
    ascending = user_client.get(f"{RUNS}/{run_with_rows}/orders", params={"order": "asc"}).json()
    assert ascending == oldest_first


@pytest.mark.parametrize("path", ["/fills", "/trades", "/events"])
def test_fills_trades_and_events_newest_first(user_client, run_with_rows, path):
    oldest_first = user_client.get(f"{RUNS}/{run_with_rows}{path}").json()
    ids = [row["id"] for row in oldest_first]
    assert ids == sorted(ids) and len(ids) >= N
    newest = user_client.get(f"{RUNS}/{run_with_rows}{path}", params={"order": "desc", "limit": 2}).json()
    assert [row["id"] for row in newest] == ids[::-1][:2]


def test_event_messages_newest_first(user_client, run_with_rows):
    events = user_client.get(f"{RUNS}/{run_with_rows}/events", params={"order": "desc", "limit": N + 1}).json()
    assert [e["message"] for e in events[:N]] == [f"line {n}" for n in reversed(range(N))]
    assert events[-1]["kind"] == "created"


@pytest.mark.parametrize("path", ["/orders", "/fills", "/trades", "/events"])
def test_an_unknown_direction_is_a_422_naming_order(user_client, run_with_rows, path):
    response = user_client.get(f"{RUNS}/{run_with_rows}{path}", params={"order": "sideways"})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["query.order"]
