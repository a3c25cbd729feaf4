"""Reading candle CSV files (the format of ``data/ohlcv/SOURCES.md``) with row-level validation.

A file is gzip-compressed or plain text (told apart by its first bytes, not its name) with the header
``timestamp,open,high,low,close,volume`` (extra columns are ignored, their order is free):
``timestamp`` is the candle's open time in epoch milliseconds UTC, prices are quote currency and
``volume`` base currency. Rows must be sorted by strictly increasing time, aligned to the timeframe.

Nothing here touches a database: :func:`read_ohlcv_csv` returns arrays or raises
:class:`CandleDataError` naming the file, the line and the column at fault.
"""

from __future__ import annotations

import gzip
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tradefleet import times
from tradefleet.errors import DomainError
from tradefleet.models.candle import OHLCV_COLUMNS

CSV_COLUMNS = ("timestamp", *OHLCV_COLUMNS)
"""The required header columns, in the order of the recorded files."""

GZIP_MAGIC = b"\x1f\x8b"

KNOWN_QUOTES: tuple[str, ...] = (
    "FDUSD", "USDT", "USDC", "TUSD", "BUSD", "DAI", "EUR", "GBP", "TRY", "BRL", "BTC", "ETH", "BNB",
)
"""Quote currencies recognised at the end of an exchange market id (``BTCUSDT`` → ``BTC/USDT``);
longest first, so ``USDT`` wins over a shorter suffix."""

_FILE_RE = re.compile(
    r"^binance_spot_(?P<market>[A-Z0-9]+)_(?P<timeframe>[0-9]+[smhdwM])_.*\.csv(?:\.gz)?$"
)

# Plausible epoch milliseconds: 1973-03-03 .. 5138-11-16. Seconds (~1.7e9) and microseconds
# (~1.7e15, Binance's public data files since 2025) fall outside and get a clear error.
_MIN_MS, _MAX_MS = 100_000_000_000, 100_000_000_000_000


class CandleDataError(DomainError):
    """A candle file or request that cannot be stored: bad CSV, unknown symbol or timeframe (422)."""

    status_code = 422
    detail = "invalid candle data"


@dataclass(frozen=True)
class OhlcvArrays:
    """Validated candles: ``times`` int64 open times (epoch ms, strictly increasing) and ``values``
    float64 ``(n, 5)`` rows of ``open, high, low, close, volume``."""

    times: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.times)


def split_market_id(market_id: str) -> str:
    """An exchange market id → ccxt's unified symbol: ``"BTCUSDT"`` → ``"BTC/USDT"``.

    A symbol that already has a ``/`` is returned upper-cased. Raises :class:`CandleDataError` when
    no quote currency of :data:`KNOWN_QUOTES` ends the id.
    """
    market_id = market_id.strip().upper()
    if "/" in market_id:
        base, _, quote = market_id.partition("/")
        if base and quote:
            return market_id
    else:
        for quote in sorted(KNOWN_QUOTES, key=len, reverse=True):
            if market_id.endswith(quote) and len(market_id) > len(quote):
                return f"{market_id[:-len(quote)]}/{quote}"
    raise CandleDataError(
        f"cannot tell base and quote currency of {market_id!r}: give the symbol as BASE/QUOTE, e.g. BTC/USDT"
    )


def infer_series(path: Path) -> tuple[str, str] | None:
    """``(symbol, timeframe)`` from a file name ``binance_spot_<BASE><QUOTE>_<tf>_....csv[.gz]``
    (``binance_spot_BTCUSDT_1h_2024-01_2024-09.csv.gz`` → ``("BTC/USDT", "1h")``), or ``None`` when
    the name does not follow that pattern. Raises :class:`CandleDataError` for an unknown quote."""
    match = _FILE_RE.match(Path(path).name)
    if match is None:
        return None
    return split_market_id(match["market"]), match["timeframe"]


def timeframe_alignment(timeframe: str) -> tuple[int, int]:
    """:func:`tradefleet.times.timeframe_alignment` (``(length_ms, offset_ms)`` of a fixed-length
    timeframe), raising :class:`CandleDataError` (422) for an unknown or calendar timeframe."""
    try:
        return times.timeframe_alignment(timeframe)
    except times.TimeValueError as exc:
        raise CandleDataError(str(exc)) from exc


def _open_text(path: Path) -> io.TextIOBase:
    with path.open("rb") as raw:
        magic = raw.read(2)
    if magic == GZIP_MAGIC:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


def read_ohlcv_csv(path: str | Path, *, timeframe: str | None = None) -> OhlcvArrays:
    """Read and validate a candle CSV file, gzip or plain.

    Checks, each failing with a :class:`CandleDataError` that names the file and, for row errors, the
    line number (the header is line 1): the header has every column of :data:`CSV_COLUMNS` (the error
    lists the missing ones); every value is a finite number and every timestamp a whole number of
    epoch milliseconds; timestamps strictly increase (an unsorted row or a duplicate timestamp is an
    error, not silently fixed); with ``timeframe``, every timestamp is a candle open time of it.
    An empty file is an error; a header with no rows gives empty arrays.
    """
    path = Path(path)
    if not path.is_file():
        raise CandleDataError(f"{path}: no such file")
    name = path.name
    try:
        with _open_text(path) as handle:
            # Let pandas infer the types: a clean file parses straight to int64/float64 columns and
            # only a column that did not is looked at value by value, to name the bad line.
            frame = pd.read_csv(handle, skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        raise CandleDataError(f"{name}: empty file (expected the header {','.join(CSV_COLUMNS)})") from None
    except (OSError, EOFError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise CandleDataError(f"{name}: unreadable CSV: {str(exc).strip()}") from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in CSV_COLUMNS if c not in frame.columns]
    if missing:
        raise CandleDataError(
            f"{name}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(header is {','.join(frame.columns)}; expected {','.join(CSV_COLUMNS)})"
        )
    # File line of each row: the header is line 1 (blank lines are skipped and not counted).
    lines = np.arange(len(frame)) + 2

    def first_bad(column: str, bad: np.ndarray, what: str) -> CandleDataError:
        i = int(np.flatnonzero(bad)[0])
        value = frame[column].iloc[i]
        shown = "(empty or NaN)" if pd.isna(value) or str(value).strip() == "" else repr(str(value))
        return CandleDataError(f"{name}: line {lines[i]}: {column} is {what}: {shown}")

    def numbers(column: str) -> np.ndarray:
        raw = frame[column]
        if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
            parsed = raw.to_numpy(dtype="float64", na_value=np.nan)
        else:
            parsed = pd.to_numeric(raw.astype(str).str.strip(), errors="coerce").to_numpy(
                dtype="float64", na_value=np.nan)
        bad = ~np.isfinite(parsed)
        if bad.any():
            raise first_bad(column, bad, "not a number")
        return parsed

    values = np.column_stack([numbers(c) for c in CSV_COLUMNS[1:]]) if len(frame) else np.empty((0, 5))
    raw_times = frame["timestamp"]
    if pd.api.types.is_integer_dtype(raw_times) and not pd.api.types.is_bool_dtype(raw_times):
        times = raw_times.to_numpy(dtype="int64")  # the usual case: exact, no float detour
        stamps = times.astype("float64")
    else:
        stamps = numbers("timestamp")
        fractional = stamps != np.floor(stamps)
        if fractional.any():
            raise first_bad("timestamp", fractional, "not a whole number of epoch milliseconds")
        times = None
    out_of_range = (stamps < _MIN_MS) | (stamps >= _MAX_MS)
    if out_of_range.any():
        raise first_bad("timestamp", out_of_range, "not in epoch milliseconds (seconds or microseconds?)")
    if times is None:
        times = stamps.astype("int64")  # exact: every value is a whole number below 1e14 < 2**53

    steps = np.diff(times)
    bad = np.flatnonzero(steps <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        if steps[i - 1] == 0:
            raise CandleDataError(
                f"{name}: line {lines[i]}: duplicate timestamp {times[i]} (also on line {lines[i - 1]})"
            )
        raise CandleDataError(
            f"{name}: line {lines[i]}: timestamp {times[i]} is earlier than {times[i - 1]} on line "
            f"{lines[i - 1]}: rows must be sorted by strictly increasing time"
        )

    if timeframe is not None:
        length_ms, offset_ms = timeframe_alignment(timeframe)
        bad = np.flatnonzero((times - offset_ms) % length_ms)
        if bad.size:
            i = int(bad[0])
            raise CandleDataError(
                f"{name}: line {lines[i]}: timestamp {times[i]} is not the open time of a {timeframe} "
                f"candle (a multiple of {length_ms} ms{f' plus {offset_ms}' if offset_ms else ''})"
            )
    return OhlcvArrays(times=times.astype("int64"), values=values.astype("float64"))
