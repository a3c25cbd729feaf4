"""``/api/v1/backtests``: create (validated like runs, plus the date range; nothing written when
rejected; enqueued after the commit), list, read, delete, and owner scoping on every route. Every
test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from tradefleet.models import Backtest, BacktestStatus
from tradefleet.services import backtests as service

BACKTESTS = "/api/v1/backtests"
BODY = {"strategy": "sma_cross", "params": {"fast": 5}, "exchange": "binance", "symbol": "BTC/USDT",
        "timeframe": "1h", "start": "2024-02-01T00:00:00Z", "end": "2024-04-01T00:00:00Z", "stake": 10_000}


def backtest_count(engine: Engine) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(Backtest)).one()


def stored(engine: Engine, backtest_id: str) -> Backtest | None:
    with Session(engine) as s:
        row = s.get(Backtest, uuid.UUID(backtest_id))
        if row is not None:
            s.expunge(row)
        return row


def create(client: TestClient, **overrides: Any) -> dict[str, Any]:
    response = client.post(BACKTESTS, json={**BODY, **overrides})
    assert response.status_code == 202, response.text
    return response.json()


# --- create ------------------------------------------------------------------------------------


def test_create_stores_a_queued_backtest_then_enqueues_it(user_client, catalog, queue, db):
    response = user_client.post(BACKTESTS, json=BODY)

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued" and body["progress"] == 0 and body["error"] is None
    assert body["params"] == {"fast": 5, "slow": 30}  # defaults filled in, as for runs
    assert body["fee"] == pytest.approx(0.001)  # binance's taker rate, from the market catalog
    assert body["start"].startswith("2024-02-01T00:00:00") and body["end"].startswith("2024-04-01T00:00:00")
    assert body["metrics"] is None and body["trades"] is None and body["equity"] is None

    row = stored(db, body["id"])
    assert row is not None and row.owner_id == user_client.user.id and row.status == BacktestStatus.queued
    assert row.start == datetime(2024, 2, 1, tzinfo=UTC) and row.end == datetime(2024, 4, 1, tzinfo=UTC)
    # Enqueued once, with the id, and only after the row was committed.
    assert queue.ids == [uuid.UUID(body["id"])] and queue.committed == [True]


def test_explicit_fee_and_zoned_times(user_client, catalog, queue, db):
    body = create(user_client, fee=0.00075, start="2024-02-01T02:00:00+02:00", end="2024-02-10")
    row = stored(db, body["id"])
    assert row.fee == 0.00075
    assert row.start == datetime(2024, 2, 1, tzinfo=UTC)  # converted to UTC
    assert row.end == datetime(2024, 2, 10, tzinfo=UTC)  # no zone: UTC


def _future(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


@pytest.mark.parametrize(("overrides", "field"), [
    ({"strategy": "no_such_strategy"}, "strategy"),
    ({"params": {"fast": 1}}, "params.fast"),  # below its minimum
    ({"params": {"fast": 40, "slow": 20}}, "params.fast"),  # fast must be below slow
    ({"params": {"speed": 3}}, "params.speed"),  # unknown parameter
    ({"exchange": "kraken"}, "exchange"),
    ({"symbol": "NOPE/USDT"}, "symbol"),
    ({"timeframe": "7m"}, "timeframe"),
    ({"stake": 0}, "stake"),
    ({"stake": 1}, "stake"),  # below the market's minimum order (5 USDT)
    ({"fee": 1.5}, "fee"),
    ({"start": "2024-04-01T00:00:00Z", "end": "2024-04-01T00:00:00Z"}, "end"),
    ({"start": "2024-05-01T00:00:00Z", "end": "2024-04-01T00:00:00Z"}, "end"),
    ({"end": "next tuesday"}, "end"),
    ({"start": "2024-01-01T00:00:00Z", "end": None}, "end"),
], ids=lambda v: v if isinstance(v, str) else "-".join(f"{k}" for k in v))
def test_invalid_requests_are_422_naming_the_field_and_write_nothing(user_client, catalog, queue, db, overrides,
                                                                      field):
    body = {k: v for k, v in {**BODY, **overrides}.items() if v is not None}

    response = user_client.post(BACKTESTS, json=body)

    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field
    assert backtest_count(db) == 0 and queue.ids == []


@pytest.mark.parametrize(("start", "end", "field"), [
    (-1, 30, "end"),  # ends in the future
    (5, 30, "start"),  # wholly in the future
])
def test_a_range_in_the_future_is_422(user_client, catalog, queue, db, start, end, field):
    response = user_client.post(BACKTESTS, json={**BODY, "start": _future(start), "end": _future(end)})

    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert error["field"] == field and "future" in error["message"]
    assert backtest_count(db) == 0 and queue.ids == []


def test_a_range_of_too_many_candles_is_422(user_client, catalog, queue, db):
    response = user_client.post(BACKTESTS, json={**BODY, "timeframe": "1m", "start": "2022-01-01T00:00:00Z",
                                                 "end": "2024-01-01T00:00:00Z"})
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["field"] == "start" and "1,051,200 candles" in error["message"]
    assert backtest_count(db) == 0


def test_503_while_the_market_catalog_is_not_loaded(user_client, queue, db):
    response = user_client.post(BACKTESTS, json=BODY)
    assert response.status_code == 503 and "not loaded" in response.json()["detail"]
    assert backtest_count(db) == 0 and queue.ids == []


def test_broker_down_marks_the_backtest_failed_and_answers_503(user_client, catalog, monkeypatch, db):
    def broken(_backtest_id):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(service, "enqueue_backtest", broken)
    response = user_client.post(BACKTESTS, json=BODY)

    assert response.status_code == 503
    listed = user_client.get(BACKTESTS).json()
    assert listed["count"] == 1
    assert listed["data"][0]["status"] == "failed" and "could not be queued" in listed["data"][0]["error"]


def test_requires_authentication(client, db):
    assert client.post(BACKTESTS, json=BODY).status_code == 401
    assert client.get(BACKTESTS).status_code == 401
    assert client.get(f"{BACKTESTS}/{uuid.uuid4()}").status_code == 401
    assert client.delete(f"{BACKTESTS}/{uuid.uuid4()}").status_code == 401


# --- read, list, delete ------------------------------------------------------------------------


def test_get_and_404s(user_client, catalog, queue):
    body = create(user_client)
    got = user_client.get(f"{BACKTESTS}/{body['id']}")
    assert got.status_code == 200 and got.json() == body

    missing = user_client.get(f"{BACKTESTS}/{uuid.uuid4()}")
    assert missing.status_code == 404 and missing.json() == {"detail": "backtest not found"}
    assert user_client.get(f"{BACKTESTS}/not-a-uuid").status_code == 422
    assert user_client.delete(f"{BACKTESTS}/{uuid.uuid4()}").status_code == 404


def test_list_is_newest_first_without_heavy_fields(user_client, catalog, queue, db):
    ids = [create(user_client, params={"fast": f})["id"] for f in (5, 6, 7)]
    # Give the result of the second to one row: the list must not carry trades or the equity curve.
    with Session(db) as s:
        row = s.get(Backtest, uuid.UUID(ids[1]))
        row.status, row.metrics, row.trades = BacktestStatus.done, {"trades": 1}, [{"pnl": 1.0}]
        row.equity, row.lookahead = [[1, 2.0]], {"flagged": True, "samples": 20, "mismatches": []}
        s.commit()

    listed = user_client.get(BACKTESTS)

    assert listed.status_code == 200
    body = listed.json()
    assert body["count"] == 3
    assert [b["id"] for b in body["data"]] == ids[::-1]
    for item in body["data"]:
        assert not {"trades", "equity", "lookahead"} & set(item)
    done = body["data"][1]
    assert done["status"] == "done" and done["metrics"] == {"trades": 1} and done["lookahead_flagged"] is True
    assert [b["id"] for b in user_client.get(BACKTESTS, params={"skip": 1, "limit": 1}).json()["data"]] == [ids[1]]


def test_delete(user_client, catalog, queue, db):
    body = create(user_client)
    response = user_client.delete(f"{BACKTESTS}/{body['id']}")
    assert response.status_code == 204 and response.content == b""
    assert stored(db, body["id"]) is None
    assert user_client.get(f"{BACKTESTS}/{body['id']}").status_code == 404
    assert user_client.get(BACKTESTS).json() == {"data": [], "count": 0}


def test_every_route_is_owner_scoped(user_client, catalog, queue, db, app, make_user, auth_headers):
    body = create(user_client)
    other_user, _ = make_user()
    with TestClient(app, headers=auth_headers(other_user)) as other:
        assert other.get(f"{BACKTESTS}/{body['id']}").status_code == 404
        assert other.get(BACKTESTS).json() == {"data": [], "count": 0}
        assert other.delete(f"{BACKTESTS}/{body['id']}").status_code == 404
        mine = create(other)

    # Nothing changed for the owner, and the owner sees only their own.
    row = stored(db, body["id"])
    assert row is not None and row.status == BacktestStatus.queued
    assert user_client.get(f"{BACKTESTS}/{body['id']}").json() == body
    assert [b["id"] for b in user_client.get(BACKTESTS).json()["data"]] == [body["id"]]
    assert user_client.get(f"{BACKTESTS}/{mine['id']}").status_code == 404
    assert user_client.delete(f"{BACKTESTS}/{mine['id']}").status_code == 404
    assert stored(db, mine["id"]) is not None
