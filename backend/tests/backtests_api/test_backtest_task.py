"""The ``backtest.run`` task, called in-process on SQLite and PostgreSQL: stored candles (imported from
the recorded 1h file through the candle store), downloads of missing candles from the simulator,
progress, and the failure paths. Results are checked against a direct ``run_backtest`` call."""

from __future__ import annotations

import logging
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from tradefleet.backtest import load_csv, run_backtest
from tradefleet.config import REPO_ROOT
from tradefleet.market import store
from tradefleet.models import Backtest, BacktestStatus, StoredCandle, ExchangeMarket
from tradefleet.services import backtest_execution as execution
from tradefleet.sandbox.registry import get_registry
from tradefleet.worker import tasks

BACKTESTS = "/api/v1/backtests"
BTC_1H = REPO_ROOT / "data" / "ohlcv" / "binance_spot_BTCUSDT_1h_2024-01_2024-09.csv.gz"
BROKEN_DIR = Path(__file__).parents[1] / "strategies_broken"
FEB_1, APR_1 = "2024-02-01T00:00:00Z", "2024-04-01T00:00:00Z"
MAR_1_MS = 1709251200000
HOUR = 3_600_000


def queue_backtest(client, **overrides: Any) -> str:
    body = {"strategy": "sma_cross", "params": {}, "symbol": "BTC/USDT", "timeframe": "1h", "start": FEB_1,
            "end": APR_1, "stake": 10_000, **overrides}
    response = client.post(BACKTESTS, json=body)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def read(db, backtest_id: str) -> Backtest:
    with Session(db) as s:
        row = s.get(Backtest, uuid.UUID(backtest_id))
        s.expunge(row)
        return row


def rules(db) -> dict[str, Any]:
    with Session(db) as s:
        m = s.get(ExchangeMarket, ("binance", "BTC/USDT"))
        return {"fee": m.taker, "amount_step": m.amount_step, "min_cost": m.min_cost, "min_amount": m.min_amount}


@pytest.fixture
def stages(monkeypatch, db) -> list[tuple[int, str, str, int]]:
    """Every progress write of the task, with the row as another session sees it right after:
    ``(percent written, stage, status read back, progress read back)``."""
    seen: list[tuple[int, str, str, int]] = []
    original = execution._Progress.__call__

    def spy(self, percent, stage=None):
        before = self.written_at
        original(self, percent, stage)
        if self.written_at != before:
            with Session(db) as s:
                row = s.get(Backtest, self.backtest_id)
                seen.append((self.percent, self.stage, row.status.value, row.progress))

    monkeypatch.setattr(execution._Progress, "__call__", spy)
    return seen


@pytest.fixture
def strategies_dir(tmp_path, settings_env) -> Path:
    """STRATEGIES_DIR with sma_cross, dca_dip and the always-raising test strategy."""
    folder = tmp_path / "strategies"
    folder.mkdir()
    shutil.copy(REPO_ROOT / "strategies" / "sma_cross.py", folder)
    shutil.copy(REPO_ROOT / "strategies" / "dca_dip.py", folder)
    shutil.copy(BROKEN_DIR / "raises_in_signals.py", folder)
    settings_env(STRATEGIES_DIR=str(folder))
    return folder


# --- the result ---------------------------------------------------------------------------------


def test_task_runs_on_stored_candles_and_matches_run_backtest(user_client, catalog, queue, btc_1h_stored, stages,
                                                              db):
    backtest_id = queue_backtest(user_client, params={"fast": 8, "slow": 40})
    assert queue.ids == [uuid.UUID(backtest_id)]

    assert tasks.run_backtest(backtest_id) == "done"

    row = read(db, backtest_id)
    assert row.status == BacktestStatus.done and row.progress == 100 and row.error is None and row.stage is None
    assert row.started_at is not None and row.finished_at >= row.started_at
    # The same backtest run directly on the recorded file, with the market's rules from the catalog.
    expected = run_backtest(get_registry().get("sma_cross"), load_csv(BTC_1H), params={"fast": 8, "slow": 40},
                            stake=10_000, start=FEB_1, end=APR_1, timeframe="1h", lookahead=True, **rules(db))
    assert expected.metrics["trades"] > 5
    assert row.metrics == pytest.approx(expected.metrics, rel=1e-12)
    assert len(row.trades) == len(expected.trades)
    for got, want in zip(row.trades, expected.trades):
        assert got["entry_time_ms"] == want["entry_time_ms"] and got["exit_time_ms"] == want["exit_time_ms"]
        assert got["pnl"] == pytest.approx(want["pnl"], rel=1e-12)
    assert row.candle_count == len(expected.equity) == 60 * 24  # February (29 days) and March
    assert (row.tested_start, row.tested_end) == (datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC))
    assert row.lookahead == expected.lookahead.to_dict() and row.lookahead["flagged"] is False
    # 1,440 candles: the equity curve is stored whole.
    assert [p[0] for p in row.equity] == expected.equity_time_ms.tolist()
    assert [p[1] for p in row.equity] == pytest.approx(expected.equity.tolist(), rel=1e-12)

    # Progress went through the real stages, visible to other sessions while the row was running.
    names = [s[1] for s in stages]
    assert names[0] == "loading candles" and "simulating" in names and "downloading candles" not in names
    assert names.index("simulating") < names.index("metrics and look-ahead check") < names.index("storing the result")
    assert all(status == "running" and read_back == percent for percent, _, status, read_back in stages)
    assert [s[0] for s in stages] == sorted(s[0] for s in stages)
    assert catalog.klines_requests() == []  # everything came from the store

    # Through the API: status, progress, then the results.
    body = user_client.get(f"{BACKTESTS}/{backtest_id}").json()
    assert body["status"] == "done" and body["progress"] == 100
    assert body["metrics"]["trades"] == expected.metrics["trades"] and len(body["trades"]) == len(expected.trades)
    assert body["lookahead"]["flagged"] is False and body["lookahead_flagged"] is False
    assert body["equity"][0] == [int(expected.equity_time_ms[0]), pytest.approx(float(expected.equity[0]))]


def test_second_delivery_and_deleted_rows_do_nothing(user_client, catalog, queue, btc_1h_stored, db):
    backtest_id = queue_backtest(user_client)
    assert tasks.run_backtest(backtest_id) == "done"
    finished = read(db, backtest_id).finished_at

    assert tasks.run_backtest(backtest_id) is None  # not queued any more
    assert read(db, backtest_id).finished_at == finished

    assert user_client.delete(f"{BACKTESTS}/{backtest_id}").status_code == 204
    assert tasks.run_backtest(backtest_id) is None
    assert tasks.run_backtest(str(uuid.uuid4())) is None


def test_a_backtest_deleted_while_running_stores_nothing(user_client, catalog, queue, btc_1h_stored, db,
                                                         monkeypatch):
    backtest_id = queue_backtest(user_client)
    real = execution.run_backtest

    def delete_then_run(*args, **kwargs):
        assert user_client.delete(f"{BACKTESTS}/{backtest_id}").status_code == 204
        return real(*args, **kwargs)

    monkeypatch.setattr(execution, "run_backtest", delete_then_run)

    assert tasks.run_backtest(backtest_id) is None
    with Session(db) as s:
        assert s.exec(select(func.count()).select_from(Backtest)).one() == 0


def test_stateful_strategy_gets_a_result_without_look_ahead_check(user_client, catalog, queue, btc_1h_stored,
                                                                  strategies_dir, db):
    backtest_id = queue_backtest(user_client, strategy="dca_dip")
    assert tasks.run_backtest(backtest_id) == "done"
    row = read(db, backtest_id)
    assert row.metrics["trades"] >= 1 and row.lookahead is None and row.candle_count == 1440


def test_range_beyond_the_data_is_clamped_to_the_candles_there_are(user_client, catalog, queue, btc_1h_stored, db):
    catalog.clock.set(MAR_1_MS)  # the exchange has nothing newer to download
    backtest_id = queue_backtest(user_client, start="2024-08-01T00:00:00Z", end="2024-12-01T00:00:00Z")

    assert tasks.run_backtest(backtest_id) == "done"

    row = read(db, backtest_id)
    last = int(load_csv(BTC_1H)["time_ms"].iloc[-1])
    assert row.tested_start == datetime(2024, 8, 1, tzinfo=UTC)
    assert row.tested_end == datetime.fromtimestamp((last + HOUR) / 1000, UTC)
    assert row.equity[-1][0] == last


# --- downloads ----------------------------------------------------------------------------------


def test_missing_candles_are_downloaded_first(user_client, catalog, queue, stages, db):
    catalog.clock.set(MAR_1_MS)
    backtest_id = queue_backtest(user_client, start="2024-02-01T00:00:00Z", end="2024-02-15T00:00:00Z")

    assert tasks.run_backtest(backtest_id) == "done"

    assert catalog.klines_requests()  # fetched through ccxt from the simulator
    with Session(db) as s:
        times = s.exec(select(StoredCandle.time_ms).order_by(StoredCandle.time_ms)).all()
    # The range and the 30 startup candles before it, and nothing else.
    feb_1 = 1706745600000
    assert times[0] == feb_1 - 30 * HOUR and times[-1] == feb_1 + 14 * 24 * HOUR - HOUR
    assert len(times) == 30 + 14 * 24
    assert "downloading candles" in [s[1] for s in stages]

    # The same backtest on the recorded file gives the same result.
    row = read(db, backtest_id)
    expected = run_backtest(get_registry().get("sma_cross"), load_csv(BTC_1H), stake=10_000, timeframe="1h",
                            start="2024-02-01", end="2024-02-15", **rules(db))
    assert row.metrics == pytest.approx(expected.metrics, rel=1e-12)

    # A second backtest of the same range downloads nothing.
    catalog.requests.clear()
    assert tasks.run_backtest(queue_backtest(user_client, start="2024-02-01T00:00:00Z",
                                             end="2024-02-15T00:00:00Z")) == "done"
    assert catalog.klines_requests() == []


def test_no_candles_anywhere_fails_with_a_clear_message(user_client, catalog, queue, db):
    catalog.clock.set(MAR_1_MS)  # the simulator's data start on 2024-01-01
    backtest_id = queue_backtest(user_client, start="2023-06-01T00:00:00Z", end="2023-07-01T00:00:00Z")

    assert tasks.run_backtest(backtest_id) == "failed"

    row = read(db, backtest_id)
    assert row.status == BacktestStatus.failed and row.finished_at is not None
    assert row.error == "no candles for BTC/USDT 1h between 2023-06-01T00:00:00Z and 2023-07-01T00:00:00Z"
    assert row.metrics is None and row.trades is None and row.equity is None and row.candle_count is None


def test_download_failure_is_reported_when_nothing_is_stored(user_client, catalog, queue, db, monkeypatch):
    import ccxt

    def unreachable(**_kwargs):
        raise ccxt.ExchangeNotAvailable("binance is down")

    monkeypatch.setattr(execution, "download", unreachable)
    backtest_id = queue_backtest(user_client)

    assert tasks.run_backtest(backtest_id) == "failed"
    error = read(db, backtest_id).error
    assert error.startswith("no candles for BTC/USDT 1h between 2024-02-01T00:00:00Z and 2024-04-01T00:00:00Z")
    assert "download failed: ExchangeNotAvailable: binance is down" in error


# --- failures -----------------------------------------------------------------------------------


def test_a_strategy_that_raises_fails_the_backtest_with_its_message(user_client, catalog, queue, btc_1h_stored,
                                                                     strategies_dir, db):
    backtest_id = queue_backtest(user_client, strategy="raises_in_signals")

    assert tasks.run_backtest(backtest_id) == "failed"

    row = read(db, backtest_id)
    assert row.status == BacktestStatus.failed
    assert "raises_in_signals.signals() raised RuntimeError: deliberate failure" in row.error
    assert row.metrics is None and row.trades is None and row.lookahead is None
    body = user_client.get(f"{BACKTESTS}/{backtest_id}").json()
    assert body["status"] == "failed" and body["error"] == row.error


def test_a_strategy_removed_after_queueing_still_runs_the_version_it_pinned(user_client, catalog, queue,
                                                                           btc_1h_stored, strategies_dir, db):
    backtest_id = queue_backtest(user_client, strategy="dca_dip")
    (strategies_dir / "dca_dip.py").unlink()

    assert tasks.run_backtest(backtest_id) == "done"
    assert read(db, backtest_id).error is None and read(db, backtest_id).strategy_version_id is not None


def test_too_few_candles_is_a_backtest_error(user_client, catalog, queue, btc_1h_stored, db):
    catalog.clock.set(MAR_1_MS)
    backtest_id = queue_backtest(user_client, params={"fast": 10, "slow": 400}, start="2024-01-01T00:00:00Z",
                                 end="2024-01-05T00:00:00Z")
    assert tasks.run_backtest(backtest_id) == "failed"
    assert read(db, backtest_id).error.startswith("too few candles: sma_cross needs 400 startup candles")


def test_unexpected_errors_are_internal_error_with_the_traceback_logged(user_client, catalog, queue, db,
                                                                       monkeypatch, caplog):
    def boom(**_kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(execution, "load_candles", boom)
    backtest_id = queue_backtest(user_client)

    with caplog.at_level(logging.ERROR, logger="tradefleet.services.backtest_execution"):
        assert tasks.run_backtest(backtest_id) == "failed"

    row = read(db, backtest_id)
    assert row.error == "internal error" and row.metrics is None
    record = next(r for r in caplog.records if backtest_id in r.getMessage())
    assert record.exc_info and record.exc_info[0] is ZeroDivisionError


# --- the equity curve ---------------------------------------------------------------------------


def test_equity_curve_is_downsampled_keeping_peaks_troughs_and_the_end():
    rng = np.random.default_rng(1)
    n = 50_000
    times = np.arange(n, dtype="int64") * 60_000
    equity = 10_000 + np.cumsum(rng.normal(0, 5, n))

    points = execution.downsample_equity(times, equity)

    assert len(points) <= 2_000
    got_t = [p[0] for p in points]
    assert got_t == sorted(set(got_t)) and got_t[0] == 0 and got_t[-1] == int(times[-1])
    values = [p[1] for p in points]
    assert max(values) == equity.max() and min(values) == equity.min()
    short = execution.downsample_equity(times[:10], equity[:10])
    assert short == [[int(t), float(v)] for t, v in zip(times[:10], equity[:10])]


def test_long_backtest_stores_at_most_2000_equity_points(user_client, catalog, queue, db, session):
    store.import_csv(session=session, path=REPO_ROOT / "data" / "ohlcv" / "binance_spot_BTCUSDT_5m_2024-01_2024-09.csv.gz")
    backtest_id = queue_backtest(user_client, timeframe="5m", start="2024-01-02T00:00:00Z",
                                 end="2024-03-01T00:00:00Z")

    assert tasks.run_backtest(backtest_id) == "done"

    row = read(db, backtest_id)
    assert row.candle_count == 59 * 288
    assert 1_000 < len(row.equity) <= 2_000
    assert row.equity[-1][0] == 1709251200000 - 300_000
