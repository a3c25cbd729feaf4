"""load_csv: the data/ohlcv format, gzip or plain, and clear errors for bad files."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from support.reference import DATA

from tradefleet.backtest import BacktestError, load_csv

HEADER = "timestamp,open,high,low,close,volume\n"
ROWS = ["1704067200000,1,2,0.5,1.5,10\n", "1704070800000,1.5,2,1,1.8,11\n", "1704074400000,1.8,1.9,1.7,1.7,12\n"]


def write(tmp_path, text, name="c.csv"):
    path = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def test_recorded_file_loads_with_the_live_frame_shape():
    candles = load_csv(DATA / "binance_spot_BTCUSDT_1h_2024-01_2024-09.csv.gz")
    assert list(candles.columns) == ["open", "high", "low", "close", "volume", "time_ms"]
    assert str(candles.index.tz) == "UTC" and candles.index.is_monotonic_increasing and candles.index.is_unique
    assert candles["time_ms"].iat[0] == 1704067200000 and candles.index.name == "time"
    assert candles["open"].dtype == np.float64 and candles["open"].iat[0] == 42283.58


@pytest.mark.parametrize("name", ["c.csv", "c.csv.gz"])
def test_plain_and_gzip(tmp_path, name):
    candles = load_csv(write(tmp_path, HEADER + "".join(ROWS), name))
    assert len(candles) == 3 and candles["close"].tolist() == [1.5, 1.8, 1.7]


@pytest.mark.parametrize("text,message", [
    ("timestamp,open,high,close,volume\n1,1,1,1,1\n", r"missing column low"),
    (HEADER, "no candles"),
    ("", "empty"),
    (HEADER + ROWS[0] + ROWS[2] + ROWS[1], "line 4: timestamp 1704070800000 is earlier than 1704074400000 on line 3"),
    (HEADER + ROWS[0] + ROWS[1] + ROWS[1], "line 4: duplicate timestamp .* \\(also on line 3\\)"),
    (HEADER + ROWS[0] + "1704070800000,1.5,abc,1,1.8,11\n", "line 3: high is not a number: 'abc'"),
    (HEADER + ROWS[0] + "1704070800000,1.5,2,,1.8,11\n", "line 3: low is not a number"),
    (HEADER + "2024-01-01,1,2,0.5,1.5,10\n", "line 2: timestamp is not a number"),
    (HEADER + "1704067200000.5,1,2,0.5,1.5,10\n", "line 2: timestamp is not a whole number of epoch milliseconds"),
    (HEADER + ROWS[0] + "1704070800000,1.5,2,1,inf,11\n", "line 3: close is not a number"),
])
def test_bad_files_name_the_problem(tmp_path, text, message):
    with pytest.raises(BacktestError, match=message):
        load_csv(write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(BacktestError, match="no such file"):
        load_csv(tmp_path / "nope.csv")


def test_compression_is_read_from_the_bytes_not_the_name(tmp_path):
    path = tmp_path / "c.csv.gz"
    path.write_text(HEADER + "".join(ROWS))
    assert len(load_csv(path)) == 3
