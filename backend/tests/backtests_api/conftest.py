"""Fixtures of the backtest API tests: the market catalog from the simulator, the broker seam
(``enqueue_backtest`` recorded instead of sent, with a check that the row was committed first), and
the recorded BTC/USDT 1h candles imported into the store."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest
from sqlmodel import Session

from tradefleet.config import REPO_ROOT
from tradefleet.db import get_engine
from tradefleet.market.store import import_csv
from tradefleet.models import Backtest, BacktestStatus
from tradefleet.services import backtests as service

BTC_1H = REPO_ROOT / "data" / "ohlcv" / "binance_spot_BTCUSDT_1h_2024-01_2024-09.csv.gz"


@dataclass
class Queue:
    """Ids ``create_backtest`` enqueued, and whether each row was committed and queued at that moment."""

    ids: list[uuid.UUID] = field(default_factory=list)
    committed: list[bool] = field(default_factory=list)


@pytest.fixture
def queue(monkeypatch) -> Queue:
    """Replace the broker: record each enqueued id, reading the row in a separate session (it must
    already be committed, status ``queued``)."""
    q = Queue()

    def record(backtest_id: uuid.UUID) -> None:
        with Session(get_engine()) as s:
            row = s.get(Backtest, backtest_id)
            q.committed.append(row is not None and row.status == BacktestStatus.queued)
        q.ids.append(backtest_id)

    monkeypatch.setattr(service, "enqueue_backtest", record)
    return q


@pytest.fixture
def catalog(market_catalog):
    """binance's markets loaded from the simulator through ccxt (as a worker loads them)."""
    return market_catalog


@pytest.fixture
def btc_1h_stored(session) -> int:
    """The recorded BTC/USDT 1h file imported into the candle store; returns the candle count."""
    report = import_csv(session=session, path=BTC_1H)
    assert (report.exchange, report.symbol, report.timeframe) == ("binance", "BTC/USDT", "1h")
    return report.rows
