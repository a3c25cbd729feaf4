"""Reading stored candles (the CSV format of ``data/ohlcv``) and checking candle frames.

Format: a header line ``timestamp,open,high,low,close,volume`` (extra columns are ignored), one
candle per line, ``timestamp`` the candle's open time in epoch milliseconds UTC, prices in the quote
currency, volume in the base currency. A ``.gz`` file is read through gzip (pandas infers it from
the name). Rows must be sorted by time, without duplicates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tradefleet.backtest.errors import BacktestError

OHLCV_COLUMNS = ("open", "high", "low", "close", "volume")
CSV_COLUMNS = ("timestamp", *OHLCV_COLUMNS)


def load_csv(path: str | Path) -> pd.DataFrame:
    """Read a candle CSV (gzip or not) into the frame strategies receive.

    Returns a DataFrame indexed by candle open time (``DatetimeIndex`` named ``time``, UTC,
    ascending, unique) with float64 columns ``open, high, low, close, volume`` and an int64 column
    ``time_ms`` (the open time in epoch ms): the same shape as the live engine's
    ``market.candles.frame_from_ohlcv``.

    Raises :class:`BacktestError` naming the problem: file missing or unreadable, empty, a missing
    column, a non-numeric or empty value (with its line number, the header being line 1), a
    timestamp out of order or repeated (with its line number).
    """
    path = Path(path)
    if not path.is_file():
        raise BacktestError(f"candle file {path} does not exist")
    fast = _read_numeric(path)
    if fast is not None:
        check_candles(fast, source=path.name, csv_lines=True)
        return fast
    # Something is off: read everything as text to say exactly what and where.
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, compression="infer")
    except pd.errors.EmptyDataError:
        raise BacktestError(f"{path.name}: the file is empty") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, EOFError) as exc:
        raise BacktestError(f"{path.name}: cannot read the file: {exc}") from None
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    missing = [c for c in CSV_COLUMNS if c not in raw.columns]
    if missing:
        raise BacktestError(f"{path.name}: missing column(s) {', '.join(missing)} "
                            f"(expected header {','.join(CSV_COLUMNS)})")
    if raw.empty:
        raise BacktestError(f"{path.name}: no candles in the file")
    values: dict[str, np.ndarray] = {}
    for column in CSV_COLUMNS:
        text = raw[column].str.strip()
        numbers = pd.to_numeric(text, errors="coerce")
        bad = numbers.isna().to_numpy() | ~np.isfinite(numbers.to_numpy(dtype="float64", na_value=np.nan))
        if bad.any():
            row = int(np.argmax(bad))
            raise BacktestError(f"{path.name}: line {row + 2}: {column} is not a finite number "
                                f"({raw[column].iat[row]!r})")
        values[column] = numbers.to_numpy(dtype="float64")
    stamps = values["timestamp"]
    if (stamps != np.floor(stamps)).any():
        row = int(np.argmax(stamps != np.floor(stamps)))
        raise BacktestError(f"{path.name}: line {row + 2}: timestamp {raw['timestamp'].iat[row]!r} is not "
                            "an integer number of milliseconds")
    times = stamps.astype("int64")
    frame = pd.DataFrame({c: values[c] for c in OHLCV_COLUMNS},
                         index=pd.DatetimeIndex(pd.to_datetime(times, unit="ms", utc=True), name="time"))
    frame["time_ms"] = times
    check_candles(frame, source=path.name, csv_lines=True)
    return frame


def _read_numeric(path: Path) -> pd.DataFrame | None:
    """The fast path: the whole file parsed as numbers, or ``None`` when anything is unusual."""
    try:
        raw = pd.read_csv(path, compression="infer")
    except Exception:  # noqa: BLE001 - the slow path reports the problem
        return None
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    if raw.empty or any(c not in raw.columns for c in CSV_COLUMNS):
        return None
    if not pd.api.types.is_integer_dtype(raw["timestamp"]):
        return None
    for column in OHLCV_COLUMNS:
        kind = raw[column].dtype
        if not (pd.api.types.is_float_dtype(kind) or pd.api.types.is_integer_dtype(kind)):
            return None
        if not np.isfinite(raw[column].to_numpy(dtype="float64")).all():
            return None
    times = raw["timestamp"].to_numpy(dtype="int64")
    frame = pd.DataFrame({c: raw[c].to_numpy(dtype="float64") for c in OHLCV_COLUMNS},
                         index=pd.DatetimeIndex(pd.to_datetime(times, unit="ms", utc=True), name="time"))
    frame["time_ms"] = times
    return frame


def check_candles(candles: pd.DataFrame, *, source: str = "candles", csv_lines: bool = False) -> None:
    """Check a candle frame: ``open, high, low, close, volume`` present and numeric, a UTC
    ``DatetimeIndex`` strictly ascending (no duplicates). Raises :class:`BacktestError`; row numbers
    in messages are CSV line numbers (data row + 2) with ``csv_lines``, else 0-based rows."""
    if not isinstance(candles, pd.DataFrame):
        raise BacktestError(f"{source}: expected a DataFrame of candles, got {type(candles).__name__}")
    missing = [c for c in OHLCV_COLUMNS if c not in candles.columns]
    if missing:
        raise BacktestError(f"{source}: missing column(s) {', '.join(missing)}")
    if not isinstance(candles.index, pd.DatetimeIndex) or candles.index.tz is None:
        raise BacktestError(f"{source}: the index must be a timezone-aware (UTC) DatetimeIndex of open times")
    for column in OHLCV_COLUMNS:
        if not pd.api.types.is_numeric_dtype(candles[column]) or pd.api.types.is_bool_dtype(candles[column]):
            raise BacktestError(f"{source}: column {column} is not numeric")
        bad = ~np.isfinite(candles[column].to_numpy(dtype="float64", na_value=np.nan))
        if bad.any():
            raise BacktestError(f"{source}: {_where(csv_lines, int(np.argmax(bad)))}: {column} is NaN or infinite")
    times = candles.index.asi8
    steps = np.diff(times)
    if (steps <= 0).any():
        row = int(np.argmax(steps <= 0)) + 1
        what = "repeats the previous timestamp" if steps[row - 1] == 0 else "is earlier than the previous row"
        raise BacktestError(f"{source}: {_where(csv_lines, row)}: candle time {candles.index[row].isoformat()} {what} "
                            "(candles must be sorted by time, without duplicates)")


def _where(csv_lines: bool, row: int) -> str:
    return f"line {row + 2}" if csv_lines else f"row {row}"
