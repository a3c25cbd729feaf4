"""Recorded candles for the exchange simulator: finding, loading and indexing the files.

The data folder (default :data:`DEFAULT_DATA_DIR`, ``<repo>/data/ohlcv``) holds gzip CSV files named
``binance_spot_<BASE><QUOTE>_<interval>_<first month>[_<last month>].csv.gz`` with the header
``timestamp,open,high,low,close,volume`` (``timestamp`` = candle open time, ms since the epoch, UTC;
see ``data/ohlcv/SOURCES.md``). Everything is read once, at load time, into numpy arrays; the request
path only slices them (``np.searchsorted`` on the open times).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tradefleet.config import REPO_ROOT

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = REPO_ROOT / "data" / "ohlcv"
"""Where the recorded candles live unless told otherwise."""

INTERVAL_MS: dict[str, int] = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 3 * 60_000,
    "5m": 5 * 60_000,
    "15m": 15 * 60_000,
    "30m": 30 * 60_000,
    "1h": 3_600_000,
    "2h": 2 * 3_600_000,
    "4h": 4 * 3_600_000,
    "6h": 6 * 3_600_000,
    "8h": 8 * 3_600_000,
    "12h": 12 * 3_600_000,
    "1d": 86_400_000,
    "3d": 3 * 86_400_000,
    "1w": 7 * 86_400_000,
}
"""Binance spot kline intervals with a fixed length, in ms (``1M`` is calendar-based and never
recorded). Source: https://developers.binance.com/docs/binance-spot-api-docs/enums#kline-intervals"""

KNOWN_QUOTES: tuple[str, ...] = ("FDUSD", "USDT", "USDC", "TUSD", "BUSD", "EUR", "TRY", "BTC", "ETH", "BNB")
"""Quote assets recognised when splitting a file's ``<BASE><QUOTE>`` market id (longest first)."""

_FILE_RE = re.compile(
    r"^binance_spot_(?P<symbol>[A-Z0-9]+)_(?P<interval>[0-9]+[smhdw])_(?P<first>\d{4}-\d{2})"
    r"(?:_(?P<last>\d{4}-\d{2}))?\.csv\.gz$"
)
_COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]


@dataclass(frozen=True)
class DataFile:
    """One recorded file, described by its name.

    ``symbol`` is the Binance market id (``"BTCUSDT"``), ``interval`` a Binance kline interval
    (``"1m"``), ``first_month`` / ``last_month`` are ``"YYYY-MM"`` (equal for a one-month file).
    """

    path: Path
    symbol: str
    base: str
    quote: str
    interval: str
    first_month: str
    last_month: str


def split_symbol(symbol: str) -> tuple[str, str]:
    """``"BTCUSDT"`` -> ``("BTC", "USDT")`` using :data:`KNOWN_QUOTES`.

    Raises ``ValueError`` when no known quote asset ends the id (or nothing is left for the base).
    """
    for quote in KNOWN_QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    raise ValueError(f"cannot split market id {symbol!r} into base and quote")


def list_data_files(data_dir: Path = DEFAULT_DATA_DIR) -> list[DataFile]:
    """The recorded candle files in ``data_dir``, sorted by (symbol, interval, first month).

    Files whose names do not follow the pattern, or whose interval is not a fixed-length Binance
    interval (:data:`INTERVAL_MS`), are skipped with a warning. Raises ``FileNotFoundError`` when
    ``data_dir`` is not a directory.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"market data folder not found: {data_dir}")
    found: list[DataFile] = []
    for path in sorted(data_dir.glob("*.csv.gz")):
        match = _FILE_RE.match(path.name)
        if match is None or match["interval"] not in INTERVAL_MS:
            log.warning("skipping %s: not binance_spot_<SYMBOL>_<interval>_<YYYY-MM>[_<YYYY-MM>].csv.gz", path)
            continue
        try:
            base, quote = split_symbol(match["symbol"])
        except ValueError:
            log.warning("skipping %s: unknown quote asset in %s", path, match["symbol"])
            continue
        found.append(
            DataFile(
                path=path,
                symbol=match["symbol"],
                base=base,
                quote=quote,
                interval=match["interval"],
                first_month=match["first"],
                last_month=match["last"] or match["first"],
            )
        )
    found.sort(key=lambda f: (f.symbol, INTERVAL_MS[f.interval], f.first_month))
    return found


@dataclass(frozen=True, eq=False)
class Series:
    """The recorded candles of one market and interval.

    ``open_time``: int64 array of candle open times (ms, UTC), strictly increasing.
    ``ohlcv``: float64 array of shape ``(n, 5)``: open, high, low, close, volume (base asset).
    A candle is *closed* at sim time ``now_ms`` when ``open_time + interval_ms <= now_ms``.
    """

    symbol: str
    interval: str
    interval_ms: int
    open_time: np.ndarray
    ohlcv: np.ndarray
    files: tuple[Path, ...] = field(default=())

    def __len__(self) -> int:
        return int(self.open_time.shape[0])

    @property
    def first_ms(self) -> int:
        """Open time of the first recorded candle (ms)."""
        return int(self.open_time[0])

    @property
    def last_ms(self) -> int:
        """Open time of the last recorded candle (ms)."""
        return int(self.open_time[-1])

    def closed_count(self, now_ms: int) -> int:
        """How many candles have closed at ``now_ms``: the index one past the last closed candle."""
        return int(np.searchsorted(self.open_time, now_ms - self.interval_ms, side="right"))

    def window(
        self,
        *,
        now_ms: int,
        limit: int,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> tuple[int, int]:
        """Row range ``[lo, hi)`` that Binance's klines endpoint would return, closed candles only.

        Like ``GET /api/v3/klines``: with ``start_ms`` the first ``limit`` candles whose open time is
        at/after it; otherwise the last ``limit`` candles (whose open time is at/before ``end_ms``
        when given). Candles not closed at ``now_ms`` are never included. ``limit`` >= 1.
        """
        hi = self.closed_count(now_ms)
        if end_ms is not None:
            hi = min(hi, int(np.searchsorted(self.open_time, end_ms, side="right")))
        if start_ms is not None:
            lo = int(np.searchsorted(self.open_time, start_ms, side="left"))
            return lo, max(lo, min(hi, lo + limit))
        return max(0, hi - limit), hi


@dataclass
class MarketData:
    """All recorded series, indexed ``series[symbol][interval]`` (intervals finest first).

    ``assets[symbol]`` is ``(base, quote)``.
    """

    data_dir: Path
    series: dict[str, dict[str, Series]]
    assets: dict[str, tuple[str, str]]

    @property
    def symbols(self) -> list[str]:
        """Market ids with recorded data, sorted."""
        return sorted(self.series)

    @property
    def first_open_ms(self) -> int:
        """The earliest recorded candle open time across all series (ms)."""
        return min(s.first_ms for by_interval in self.series.values() for s in by_interval.values())

    def get(self, symbol: str, interval: str) -> Series | None:
        """The series, or ``None`` when that market or interval is not recorded."""
        return self.series.get(symbol, {}).get(interval)

    def latest_closed(self, symbol: str, now_ms: int) -> tuple[Series, int] | None:
        """The series holding the most recent closed candle of ``symbol`` and that candle's row.

        Among the recorded intervals, the one whose last closed candle closes latest wins; on a tie
        the finest interval. ``None`` when no candle of ``symbol`` has closed yet.
        """
        best: tuple[int, int, Series, int] | None = None
        for s in self.series.get(symbol, {}).values():
            n = s.closed_count(now_ms)
            if n == 0:
                continue
            close_ms = int(s.open_time[n - 1]) + s.interval_ms
            key = (close_ms, -s.interval_ms)
            if best is None or key > best[:2]:
                best = (close_ms, -s.interval_ms, s, n - 1)
        return None if best is None else (best[2], best[3])


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    frame = pd.read_csv(
        path,
        compression="gzip",
        dtype={"timestamp": "int64", **{c: "float64" for c in _COLUMNS[1:]}},
    )
    missing = [c for c in _COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    times = frame["timestamp"].to_numpy(dtype=np.int64, copy=True)
    values = frame[_COLUMNS[1:]].to_numpy(dtype=np.float64, copy=True)
    return times, values


def load_market_data(data_dir: Path = DEFAULT_DATA_DIR, *, symbols: list[str] | None = None) -> MarketData:
    """Read every recorded file of ``data_dir`` (or only those of ``symbols``) into memory.

    Several files of one market and interval are merged (sorted by open time, duplicates dropped,
    first file wins). Memory: 48 bytes per candle (int64 time + five float64).
    Raises ``FileNotFoundError`` when the folder is missing or holds no usable file.
    """
    files = list_data_files(data_dir)
    if symbols is not None:
        wanted = set(symbols)
        files = [f for f in files if f.symbol in wanted]
    if not files:
        raise FileNotFoundError(f"no recorded candles in {data_dir}")
    grouped: dict[tuple[str, str], list[DataFile]] = {}
    for f in files:
        grouped.setdefault((f.symbol, f.interval), []).append(f)
    series: dict[str, dict[str, Series]] = {}
    assets: dict[str, tuple[str, str]] = {}
    for (symbol, interval), group in grouped.items():
        parts = [_read_csv(f.path) for f in group]
        times = np.concatenate([p[0] for p in parts])
        values = np.concatenate([p[1] for p in parts])
        times, first_idx = np.unique(times, return_index=True)  # sorted, first occurrence wins
        values = np.ascontiguousarray(values[first_idx])
        if times.size == 0:
            log.warning("skipping %s %s: no rows", symbol, interval)
            continue
        series.setdefault(symbol, {})[interval] = Series(
            symbol=symbol,
            interval=interval,
            interval_ms=INTERVAL_MS[interval],
            open_time=times,
            ohlcv=values,
            files=tuple(f.path for f in group),
        )
        assets[symbol] = (group[0].base, group[0].quote)
    for symbol in series:
        series[symbol] = dict(sorted(series[symbol].items(), key=lambda kv: kv[1].interval_ms))
    return MarketData(data_dir=Path(data_dir), series=series, assets=assets)
