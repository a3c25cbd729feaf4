"""Backtests pin a strategy version when requested, and the task runs that version's code."""

from __future__ import annotations

import uuid

from version_helpers import cross_source

from tradefleet.config import REPO_ROOT
from tradefleet.market.store import import_csv
from tradefleet.models import Backtest, BacktestStatus
from tradefleet.services import backtest_execution
from tradefleet.services import backtests as backtest_service

BACKTESTS = "/api/v1/backtests"
BTC_1H = REPO_ROOT / "data" / "ohlcv" / "binance_spot_BTCUSDT_1h_2024-01_2024-09.csv.gz"


def test_backtests_run_the_version_they_pinned(trader, published, market_catalog, session, monkeypatch):
    import_csv(session=session, path=BTC_1H)
    queued: list[uuid.UUID] = []
    monkeypatch.setattr(backtest_service, "enqueue_backtest", queued.append)
    v1 = published(cross_source())
    v2 = published(cross_source(revision=1, trades=False))
    body = {"strategy": "author_cross", "symbol": "BTC/USDT", "timeframe": "1h", "stake": 10_000,
            "start": "2024-02-01T00:00:00Z", "end": "2024-04-01T00:00:00Z"}

    latest = trader.post(BACKTESTS, json=body)
    older = trader.post(BACKTESTS, json={**body, "strategy_version_id": v1["id"]})
    wrong = trader.post(BACKTESTS, json={**body, "strategy_version_id": str(uuid.uuid4())})

    assert latest.status_code == older.status_code == 202, (latest.text, older.text)
    assert (latest.json()["strategy_version_id"], latest.json()["strategy_version"]) == (v2["id"], 2)
    assert (older.json()["strategy_version_id"], older.json()["strategy_version"]) == (v1["id"], 1)
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "strategy_version_id"
    published(cross_source(revision=2, trades=False))  # published after the request: changes nothing
    for backtest_id in queued:
        assert backtest_execution.execute_backtest(backtest_id) == BacktestStatus.done
    session.expire_all()
    results = {str(b.strategy_version_id): b for b in (session.get(Backtest, i) for i in queued)}
    assert results[v1["id"]].metrics["trades"] >= 5  # the crossover trades
    assert results[v2["id"]].metrics["trades"] == 0  # the version that never enters
    listed = trader.get(BACKTESTS).json()["data"]
    assert sorted(b["strategy_version"] for b in listed) == [1, 2]


def test_a_backtest_stored_before_versions_is_pinned_when_it_runs(trader, market_catalog, session):
    import_csv(session=session, path=BTC_1H)
    from datetime import UTC, datetime

    row = Backtest(owner_id=trader.user.id, strategy="sma_cross", params={}, exchange="binance", symbol="BTC/USDT",
                   timeframe="1h", start=datetime(2024, 2, 1, tzinfo=UTC), end=datetime(2024, 3, 1, tzinfo=UTC),
                   stake=10_000, fee=0.001)
    session.add(row)
    session.commit()
    bundled = {s["name"]: s for s in trader.get("/api/v1/strategies").json()}["sma_cross"]

    assert backtest_execution.execute_backtest(row.id) == BacktestStatus.done

    session.expire_all()
    assert str(session.get(Backtest, row.id).strategy_version_id) == bundled["version_id"]
    assert trader.get(f"{BACKTESTS}/{row.id}").json()["strategy_version"] == 1
