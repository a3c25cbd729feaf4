"""Reading candle CSV files without a database: names, symbols, timeframes, and the parser on the
recorded files (the bad files are tested through import_csv, which must also store nothing)."""

from __future__ import annotations

import numpy as np
import pytest
from candle_helpers import BTC_1H, recorded, write_csv

from tradefleet.market.csvio import (
    CandleDataError,
    infer_series,
    read_ohlcv_csv,
    split_market_id,
    timeframe_alignment,
)


@pytest.mark.parametrize(("market_id", "symbol"), [
    ("BTCUSDT", "BTC/USDT"), ("ethbtc", "ETH/BTC"), ("USDCUSDT", "USDC/USDT"), ("SOLFDUSD", "SOL/FDUSD"),
    ("BNBETH", "BNB/ETH"), ("btc/usdt", "BTC/USDT"), ("1000SATSUSDC", "1000SATS/USDC"),
])
def test_split_market_id(market_id, symbol):
    assert split_market_id(market_id) == symbol


@pytest.mark.parametrize("market_id", ["USDT", "BTCXYZ", "/USDT", ""])
def test_split_market_id_refuses_unknown_quotes(market_id):
    with pytest.raises(CandleDataError, match="BASE/QUOTE"):
        split_market_id(market_id)


def test_infer_series_from_file_names(tmp_path):
    assert infer_series(BTC_1H) == ("BTC/USDT", "1h")
    assert infer_series(tmp_path / "binance_spot_ETHBTC_5m_2024-01.csv") == ("ETH/BTC", "5m")
    assert infer_series(tmp_path / "candles.csv.gz") is None
    assert infer_series(tmp_path / "kraken_spot_BTCUSD_1h_2024-01.csv.gz") is None


def test_timeframe_alignment():
    assert timeframe_alignment("1m") == (60_000, 0)
    assert timeframe_alignment("4h") == (4 * 3_600_000, 0)
    assert timeframe_alignment("1w") == (7 * 86_400_000, 4 * 86_400_000)  # Monday 1970-01-05
    for bad in ["1M", "1y", "0m", "x", "", "1h30m"]:
        with pytest.raises(CandleDataError, match="unsupported timeframe"):
            timeframe_alignment(bad)


def test_reads_a_recorded_file_exactly():
    expected = recorded(BTC_1H)
    data = read_ohlcv_csv(BTC_1H, timeframe="1h")
    assert len(data) == len(expected) == 5980
    assert data.times.dtype == np.int64
    np.testing.assert_array_equal(data.times, expected["timestamp"].to_numpy())
    np.testing.assert_array_equal(data.values, expected[["open", "high", "low", "close", "volume"]].to_numpy())


def test_column_order_and_extra_columns_do_not_matter(tmp_path):
    frame = recorded(BTC_1H).head(5)
    shuffled = frame[["volume", "close", "timestamp", "high", "low", "open"]].assign(trades=7)
    data = read_ohlcv_csv(write_csv(tmp_path / "x.csv", shuffled), timeframe="1h")
    np.testing.assert_array_equal(data.values, frame[["open", "high", "low", "close", "volume"]].to_numpy())


def test_header_only_gives_no_rows(tmp_path):
    data = read_ohlcv_csv(write_csv(tmp_path / "x.csv", "timestamp,open,high,low,close,volume\n"))
    assert len(data) == 0 and data.values.shape == (0, 5)


def test_empty_file_is_an_error(tmp_path):
    with pytest.raises(CandleDataError, match="empty file"):
        read_ohlcv_csv(write_csv(tmp_path / "x.csv", ""))
