"""The candle store on SQLite and PostgreSQL: importing recorded and broken CSV files, de-duplication,
reading back, gaps and coverage."""

from __future__ import annotations

import gzip
import shutil
import time

import numpy as np
import pandas as pd
import pytest
from candle_helpers import BTC_1H, BTC_5M, HOUR, T0, recorded, write_csv
from sqlalchemy import delete, func
from sqlmodel import Session, select

from tradefleet.market.candles import frame_from_ohlcv
from tradefleet.market.store import (
    CandleDataError,
    Gap,
    coverage,
    find_gaps,
    import_csv,
    list_series,
    load_candles,
)
from tradefleet.models import StoredCandle

SERIES = {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1h"}
OHLCV = ["open", "high", "low", "close", "volume"]


def stored_count(session: Session) -> int:
    return session.exec(select(func.count()).select_from(StoredCandle)).one()


def assert_equals_csv(frame: pd.DataFrame, expected: pd.DataFrame) -> None:
    np.testing.assert_array_equal(frame["time_ms"].to_numpy(), expected["timestamp"].to_numpy())
    np.testing.assert_array_equal(frame[OHLCV].to_numpy(), expected[OHLCV].to_numpy())


def test_import_a_recorded_file(session):
    report = import_csv(session=session, path=BTC_1H)
    expected = recorded(BTC_1H)

    assert (report.exchange, report.symbol, report.timeframe) == ("binance", "BTC/USDT", "1h")
    assert report.rows == report.stored == len(expected) == 5980
    assert report.duplicates == report.updated == 0
    assert (report.first_ms, report.last_ms) == (T0, int(expected["timestamp"].iloc[-1]))
    assert report.gaps == []

    frame = load_candles(session=session, **SERIES)
    assert_equals_csv(frame, expected)
    # The same shape as the engine's candles.
    reference = frame_from_ohlcv(expected.to_numpy())
    pd.testing.assert_frame_equal(frame, reference)
    assert frame.index.name == "time" and str(frame.index.tz) == "UTC"
    assert frame["time_ms"].dtype == np.int64


def test_reimport_stores_no_duplicates(session):
    import_csv(session=session, path=BTC_1H)
    again = import_csv(session=session, path=BTC_1H)
    assert (again.rows, again.stored, again.updated, again.duplicates) == (5980, 0, 0, 5980)
    assert stored_count(session) == 5980


def test_overlapping_files_and_corrected_values(session, tmp_path):
    frame = recorded(BTC_1H)
    first = write_csv(tmp_path / "a.csv", frame.iloc[:300])
    second_part = frame.iloc[200:500].copy()
    second_part.loc[250, "close"] = 1.5  # a corrected value: the latest write wins
    second = write_csv(tmp_path / "b.csv", second_part)

    a = import_csv(session=session, path=first, symbol="BTC/USDT", timeframe="1h")
    b = import_csv(session=session, path=second, symbol="BTCUSDT", timeframe="1h")  # market id is split
    assert (a.stored, a.duplicates) == (300, 0)
    assert (b.rows, b.stored, b.updated, b.duplicates) == (300, 200, 1, 99)
    stored = load_candles(session=session, **SERIES)
    assert len(stored) == 500
    assert stored["close"].iloc[250] == 1.5
    assert stored["close"].iloc[251] == frame["close"].iloc[251]


def test_gzip_and_plain_are_told_by_content(session, tmp_path):
    frame = recorded(BTC_1H)
    plain = write_csv(tmp_path / "binance_spot_BTCUSDT_1h_2024-01.csv", frame.iloc[:100])
    # gzip content behind a plain name, and the reverse: the first bytes decide, not the name.
    gz_named_plain = write_csv(tmp_path / "eth.csv", frame.iloc[100:200], gz=True)
    plain_named_gz = write_csv(tmp_path / "sol.csv.gz", frame.iloc[200:300], gz=False)
    assert gzip.decompress(gz_named_plain.read_bytes())  # really gzip

    assert import_csv(session=session, path=plain).stored == 100
    assert import_csv(session=session, path=gz_named_plain, symbol="BTC/USDT", timeframe="1h").stored == 100
    assert import_csv(session=session, path=plain_named_gz, symbol="BTC/USDT", timeframe="1h").stored == 100
    assert_equals_csv(load_candles(session=session, **SERIES), frame.iloc[:300])


def test_plain_copy_of_recorded_file(session, tmp_path):
    path = tmp_path / "binance_spot_BTCUSDT_1h_2024-01_2024-09.csv"
    with gzip.open(BTC_1H, "rb") as src, path.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    assert import_csv(session=session, path=path).stored == 5980
    assert import_csv(session=session, path=BTC_1H).duplicates == 5980


GOOD_ROWS = [
    "1704067200000,42283.58,42554.57,42261.02,42475.23,1271.68108",
    "1704070800000,42475.23,42775.0,42431.65,42613.56,1196.37856",
    "1704074400000,42613.57,42638.41,42500.0,42581.1,685.2198",
]
HEADER = "timestamp,open,high,low,close,volume"


def _file(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


@pytest.mark.parametrize(("content", "message"), [
    (_file(*GOOD_ROWS, header="timestamp,open,high,close"), r"missing columns low, volume"),
    (_file(*GOOD_ROWS, header="time,open,high,low,close,volume"), r"missing column timestamp \("),
    (_file(*GOOD_ROWS, "1704070800000,1,2,0.5,1,10"), r"line 5: timestamp 1704070800000 is earlier than 1704074400000 on line 4"),
    (_file(*GOOD_ROWS, "1704074400000,1,2,0.5,1,10"), r"line 5: duplicate timestamp 1704074400000 \(also on line 4\)"),
    (_file(*GOOD_ROWS, "1704078000000,1,2,abc,1,10"), r"line 5: low is not a number: 'abc'"),
    (_file(*GOOD_ROWS, "1704078000000,1,2,,1,10"), r"line 5: low is not a number: \(empty or NaN\)"),
    (_file(*GOOD_ROWS, "1704078000000,1,2,0.5,1,inf"), r"line 5: volume is not a number: 'inf'"),
    (_file(*GOOD_ROWS, "1704078000001,1,2,0.5,1,10"), r"line 5: timestamp 1704078000001 is not the open time of a 1h candle"),
    (_file(*GOOD_ROWS, "1704078000000.5,1,2,0.5,1,10"), r"line 5: timestamp is not a whole number"),
    (_file(*GOOD_ROWS, "2024-01-01T03:00,1,2,0.5,1,10"), r"line 5: timestamp is not a number"),
    (_file("1704067200,1,2,0.5,1,10"), r"line 2: timestamp is not in epoch milliseconds \(seconds or microseconds\?\)"),
    (_file(*GOOD_ROWS, "1704078000000,1,2,0.5,1,10,99"), r"unreadable CSV"),
], ids=["missing-columns", "missing-timestamp", "unsorted", "duplicate", "non-numeric", "empty-value", "infinite",
        "misaligned", "fractional-ms", "iso-time", "seconds", "extra-field"])
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_bad_files_store_nothing(session, tmp_path, content, message, gz):
    path = write_csv(tmp_path / "bad.csv", content, gz=gz)
    with pytest.raises(CandleDataError, match=message) as caught:
        import_csv(session=session, path=path, symbol="BTC/USDT", timeframe="1h")
    assert "bad.csv" in str(caught.value)
    session.rollback()
    assert stored_count(session) == 0


def test_names_that_say_nothing_need_symbol_and_timeframe(session, tmp_path):
    path = write_csv(tmp_path / "candles.csv", _file(*GOOD_ROWS))
    with pytest.raises(CandleDataError, match="cannot infer the symbol and timeframe"):
        import_csv(session=session, path=path)
    with pytest.raises(CandleDataError, match="cannot infer the timeframe"):
        import_csv(session=session, path=path, symbol="BTC/USDT")
    with pytest.raises(CandleDataError, match="unsupported timeframe"):
        import_csv(session=session, path=path, symbol="BTC/USDT", timeframe="1M")
    with pytest.raises(CandleDataError, match="no such file"):
        import_csv(session=session, path=tmp_path / "missing.csv", symbol="BTC/USDT", timeframe="1h")
    assert stored_count(session) == 0


def test_gaps_after_deleting_rows(session):
    import_csv(session=session, path=BTC_1H)
    t = lambda i: T0 + i * HOUR  # noqa: E731 - the open time of the i-th candle
    holes = [10, 11, 12, 100, 4000]
    edges = [0, 5979]  # missing before the first / after the last stored candle: not gaps
    session.exec(delete(StoredCandle).where(StoredCandle.time_ms.in_([t(i) for i in holes + edges])))
    session.commit()

    gaps = find_gaps(session=session, **SERIES)
    assert gaps == [Gap(t(10), t(12), 3), Gap(t(100), t(100), 1), Gap(t(4000), t(4000), 1)]
    assert find_gaps(session=session, **SERIES, start_ms=t(50), end_ms=t(3000)) == [Gap(t(100), t(100), 1)]
    assert find_gaps(session=session, **SERIES, start_ms=t(11)) == gaps[1:]  # the hole's start is not stored

    cov = coverage(session=session, **SERIES)
    assert (cov.count, cov.first_ms, cov.last_ms, cov.missing) == (5980 - 7, t(1), t(5978), 5)
    assert cov.gaps == gaps
    [info] = list_series(session)
    assert (info.symbol, info.count, info.first_ms, info.last_ms, info.missing) == ("BTC/USDT", 5973, t(1), t(5978), 5)

    # Re-importing the file fills the holes (and the edges) again.
    report = import_csv(session=session, path=BTC_1H)
    assert (report.stored, report.duplicates, report.gaps) == (7, 5973, [])
    assert find_gaps(session=session, **SERIES) == []


def test_load_candles_window_and_empty(session):
    import_csv(session=session, path=BTC_1H)
    window = load_candles(session=session, **SERIES, start_ms=T0 + 5 * HOUR, end_ms=T0 + 9 * HOUR)
    assert window["time_ms"].tolist() == [T0 + i * HOUR for i in range(5, 10)]  # both ends inclusive
    empty = load_candles(session=session, exchange="binance", symbol="ETH/USDT", timeframe="1h")
    assert empty.empty and list(empty.columns) == OHLCV + ["time_ms"] and empty.index.name == "time"
    cov = coverage(session=session, exchange="binance", symbol="ETH/USDT", timeframe="1h")
    assert (cov.count, cov.first_ms, cov.last_ms, cov.gaps) == (0, None, None, [])


def test_list_series(session):
    import_csv(session=session, path=BTC_1H)
    import_csv(session=session, path=BTC_1H, exchange="kraken")
    series = list_series(session)
    assert [(s.exchange, s.symbol, s.timeframe, s.count, s.missing) for s in series] == [
        ("binance", "BTC/USDT", "1h", 5980, 0), ("kraken", "BTC/USDT", "1h", 5980, 0)]


def test_import_speed_of_the_5m_file(session, db):
    """72,000 rows: a few seconds at most (measured 0.6-1.0 s on SQLite, 0.9-1.2 s on PostgreSQL)."""
    started = time.perf_counter()
    report = import_csv(session=session, path=BTC_5M)
    elapsed = time.perf_counter() - started
    print(f"\n{db.dialect.name}: imported {report.rows} rows in {elapsed:.2f} s "
          f"({report.rows / elapsed:,.0f} rows/s)")
    assert report.stored == report.rows == 71769
    assert elapsed < 20, f"import took {elapsed:.1f} s"
    started = time.perf_counter()
    assert import_csv(session=session, path=BTC_5M).duplicates == 71769
    print(f"{db.dialect.name}: re-import (all duplicates) in {time.perf_counter() - started:.2f} s")


def test_load_last_reads_only_the_newest_rows(session):
    from sqlalchemy import event

    import_csv(session=session, path=BTC_1H)
    everything = load_candles(session=session, **SERIES)
    start, end = int(everything["time_ms"].iloc[100]), int(everything["time_ms"].iloc[400])
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args):  # noqa: ANN001
        statements.append(statement)

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", seen)
    try:
        last = load_candles(session=session, start_ms=start, end_ms=end, last=50, **SERIES)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    expected = everything[(everything["time_ms"] >= start) & (everything["time_ms"] <= end)].tail(50)
    pd.testing.assert_frame_equal(last, expected)  # ascending, the newest 50 of the range
    assert any("LIMIT" in s.upper() and "DESC" in s.upper() for s in statements)  # the database reads 50 rows
    assert len(load_candles(session=session, last=0, **SERIES)) == 0
    assert len(load_candles(session=session, last=10_000, **SERIES)) == len(everything)
