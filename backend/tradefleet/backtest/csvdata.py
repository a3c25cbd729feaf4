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
from tradefleet.market.candles import frame_from_ohlcv
from tradefleet.market.csvio import CandleDataError, read_ohlcv_csv
from tradefleet.models.candle import OHLCV_COLUMNS


def load_csv(path: str | Path) -> pd.DataFrame:
    """Read a candle CSV (gzip or not) into the frame strategies receive.

    Returns a DataFrame indexed by candle open time (``DatetimeIndex`` named ``time``, UTC,
    ascending, unique) with float64 columns ``open, high, low, close, volume`` and an int64 column
    ``time_ms`` (the open time in epoch ms): the same shape as the live engine's
    ``market.candles.frame_from_ohlcv``.

    The file is read and checked by :func:`tradefleet.market.csvio.read_ohlcv_csv` (the same reader
    as ``tradefleet data import``); its errors (missing file or column, a value that is not a
    number, a row out of order or repeated, each with its line number) come back as
    :class:`BacktestError`, as does a file without candles.
    """
    path = Path(path)
    try:
        arrays = read_ohlcv_csv(path)
    except CandleDataError as exc:
        raise BacktestError(exc.detail) from exc
    if not len(arrays):
        raise BacktestError(f"{path.name}: no candles in the file")
    return frame_from_ohlcv(np.column_stack([arrays.times.astype("float64"), arrays.values]))


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
