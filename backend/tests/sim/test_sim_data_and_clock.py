"""Loading/indexing the recorded files, kline formatting, and the sim clock (no server)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from sim_helpers import DAY, MINUTE, T0, b8, csv_rows

from tradefleet.sim import DEFAULT_DATA_DIR, MarketData, Series, SimClock, list_data_files, load_market_data
from tradefleet.sim.markets import build_rules
from tradefleet.sim.public import format_klines

FIRST_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC


def _write(path: Path, rows: list[tuple[int, str, str, str, str, str]]) -> None:
    with gzip.open(path, "wt") as fh:
        fh.write("timestamp,open,high,low,close,volume\n")
        for r in rows:
            fh.write(",".join(str(x) for x in r) + "\n")


def test_list_data_files_parses_names() -> None:
    files = list_data_files(DEFAULT_DATA_DIR)
    assert len(files) == 13
    by_symbol: dict[str, set[str]] = {}
    for f in files:
        assert f.quote == "USDT" and f.base + f.quote == f.symbol
        by_symbol.setdefault(f.symbol, set()).add(f.interval)
    assert by_symbol == {
        "BTCUSDT": {"1m", "5m", "1h"},
        "ETHUSDT": {"1m", "5m", "1h"},
        "BNBUSDT": {"1m"},
        "SOLUSDT": {"5m", "1h"},
        "XRPUSDT": {"5m", "1h"},
        "DOGEUSDT": {"5m", "1h"},
    }
    btc_5m = next(f for f in files if f.symbol == "BTCUSDT" and f.interval == "5m")
    assert (btc_5m.first_month, btc_5m.last_month) == ("2024-01", "2024-09")


def test_list_data_files_skips_foreign_names_and_needs_a_folder(tmp_path: Path) -> None:
    _write(tmp_path / "binance_spot_ADAUSDT_1m_2024-01.csv.gz", [(FIRST_MS, "1", "1", "1", "1", "1")])
    _write(tmp_path / "kraken_ADAUSD_1m_2024-01.csv.gz", [(FIRST_MS, "1", "1", "1", "1", "1")])
    _write(tmp_path / "binance_spot_ADAUSDT_7m_2024-01.csv.gz", [(FIRST_MS, "1", "1", "1", "1", "1")])
    assert [(f.symbol, f.interval) for f in list_data_files(tmp_path)] == [("ADAUSDT", "1m")]
    with pytest.raises(FileNotFoundError):
        list_data_files(tmp_path / "missing")
    with pytest.raises(FileNotFoundError):
        load_market_data(tmp_path, symbols=["NOPEUSDT"])


def test_load_market_data_matches_the_files(market_data: MarketData) -> None:
    assert market_data.symbols == ["BNBUSDT", "BTCUSDT", "DOGEUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
    assert market_data.first_open_ms == FIRST_MS
    assert list(market_data.series["BTCUSDT"]) == ["1m", "5m", "1h"]  # finest first
    for symbol, by_interval in market_data.series.items():
        for interval, s in by_interval.items():
            rows = csv_rows(symbol, interval)
            assert len(s) == len(rows)
            assert s.open_time.dtype == np.int64 and s.ohlcv.dtype == np.float64 and s.ohlcv.shape == (len(rows), 5)
            assert s.first_ms == rows[0][0] and s.last_ms == rows[-1][0]
            assert np.all(np.diff(s.open_time) == s.interval_ms)
    assert market_data.get("SOLUSDT", "1m") is None


def test_klines_text_equals_recorded_text_for_every_row(market_data: MarketData) -> None:
    """8-decimal formatting of the float arrays gives back exactly the recorded numbers."""
    for symbol, by_interval in market_data.series.items():
        for interval, s in by_interval.items():
            served = json.loads(format_klines(s, 0, len(s)))
            rows = csv_rows(symbol, interval)
            assert len(served) == len(rows)
            for got, (ts, values) in zip(served, rows):
                assert got[0] == ts and got[6] == ts + s.interval_ms - 1
                assert got[1:6] == [b8(v) for v in values], (symbol, interval, ts)
                assert len(got) == 12 and got[8] == 0 and got[11] == "0"


def test_series_window_semantics() -> None:
    times = np.arange(10, dtype=np.int64) * MINUTE  # candles open at 0, 1, ..., 9 minutes
    s = Series("XUSDT", "1m", MINUTE, times, np.ones((10, 5)))
    now = 5 * MINUTE + 30_000  # candles 0..4 closed, 5 is open
    assert s.closed_count(now) == 5
    assert s.window(now_ms=now, limit=500) == (0, 5)
    assert s.window(now_ms=now, limit=2) == (3, 5)
    assert s.window(now_ms=now, limit=2, start_ms=MINUTE) == (1, 3)
    assert s.window(now_ms=now, limit=9, start_ms=MINUTE + 1) == (2, 5)  # first open at/after start
    assert s.window(now_ms=now, limit=2, end_ms=2 * MINUTE) == (1, 3)  # last opens at/before end
    assert s.window(now_ms=now, limit=9, start_ms=MINUTE, end_ms=3 * MINUTE) == (1, 4)
    assert s.window(now_ms=now, limit=9, start_ms=8 * MINUTE) == (8, 8)  # future: nothing
    assert s.window(now_ms=10 * MINUTE, limit=3) == (7, 10)  # all closed
    assert s.window(now_ms=100 * MINUTE, limit=3) == (7, 10)  # after the recording ends
    assert s.window(now_ms=MINUTE - 1, limit=3) == (0, 0)  # before the first close


def test_latest_closed_prefers_the_latest_close_then_the_finest(market_data: MarketData) -> None:
    s, row = market_data.latest_closed("BTCUSDT", T0 + 7 * MINUTE)  # type: ignore[misc]
    assert s.interval == "1m" and int(s.open_time[row]) == T0 + 6 * MINUTE
    after_1m = market_data.series["BTCUSDT"]["1m"].last_ms + 2 * DAY
    s, row = market_data.latest_closed("BTCUSDT", after_1m)  # type: ignore[misc]
    assert s.interval == "5m" and int(s.open_time[row]) == after_1m - 5 * MINUTE
    assert market_data.latest_closed("BTCUSDT", FIRST_MS + 59_999) is None


def test_merged_files_and_derived_rules(tmp_path: Path) -> None:
    _write(
        tmp_path / "binance_spot_ADAUSDT_1m_2024-01.csv.gz",
        [(FIRST_MS, "0.5912", "0.5920", "0.5900", "0.5911", "1200.3"), (FIRST_MS + MINUTE, "0.5911", "0.5915", "0.59", "0.5914", "800")],
    )
    _write(
        tmp_path / "binance_spot_ADAUSDT_1m_2024-02.csv.gz",
        [(FIRST_MS + MINUTE, "9", "9", "9", "9", "9"), (FIRST_MS + 2 * MINUTE, "0.5914", "0.5914", "0.5913", "0.5913", "10.1")],
    )
    data = load_market_data(tmp_path)
    s = data.series["ADAUSDT"]["1m"]
    assert s.open_time.tolist() == [FIRST_MS, FIRST_MS + MINUTE, FIRST_MS + 2 * MINUTE]
    assert s.ohlcv[1].tolist() == [0.5911, 0.5915, 0.59, 0.5914, 800.0]  # first file wins on duplicates
    rules = build_rules(data)["ADAUSDT"]
    assert (rules.base, rules.quote, rules.tick_size, rules.step_size) == ("ADA", "USDT", "0.0001", "0.1")


def test_clock_frozen_set_advance() -> None:
    clock = SimClock(T0, speed=0)
    assert clock.now_ms() == T0 and clock.start_ms == T0 and clock.speed == 0
    assert clock.advance(MINUTE) == T0 + MINUTE
    assert clock.now_ms() == T0 + MINUTE
    clock.set(T0 - DAY)
    assert clock.now_ms() == T0 - DAY
    assert clock.start_ms == T0
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        SimClock(T0, speed=-1)


def test_clock_runs_speed_times_wall_time() -> None:
    wall = [100.0]
    clock = SimClock(T0, speed=60, time_source=lambda: wall[0])
    wall[0] += 1.5
    assert clock.now_ms() == T0 + 90_000  # 1.5 s wall = 90 s sim
    clock.set_speed(0)
    wall[0] += 10
    assert clock.now_ms() == T0 + 90_000  # frozen keeps the time
    clock.set_speed(2)
    wall[0] += 1
    assert clock.now_ms() == T0 + 92_000
    clock.set(T0)
    wall[0] += 0.5
    assert clock.now_ms() == T0 + 1_000  # keeps running after set()
