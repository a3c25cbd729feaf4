"""Shared constants and helpers of the simulator tests (read the recorded files independently)."""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from tradefleet.sim import DEFAULT_DATA_DIR, MarketData, SimClock
from tradefleet.sim.data import list_data_files

# 2024-01-03 00:00:00 UTC: inside every recorded series.
T0 = 1_704_240_000_000
MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000


@dataclass
class Sim:
    """The session's running simulator: its URL, clock, data and the paths it received."""

    base_url: str
    clock: SimClock
    data: MarketData
    requests: list[str]


@lru_cache(maxsize=None)
def csv_rows(symbol: str, interval: str) -> tuple[tuple[int, tuple[str, ...]], ...]:
    """The recorded rows of a series as text, read independently of tradefleet.sim: (open ms, (o,h,l,c,v))."""
    files = [f for f in list_data_files(DEFAULT_DATA_DIR) if f.symbol == symbol and f.interval == interval]
    assert files, f"no recorded file for {symbol} {interval}"
    rows: list[tuple[int, tuple[str, ...]]] = []
    for f in files:
        with gzip.open(f.path, "rt", newline="") as fh:
            reader = csv.reader(fh)
            assert next(reader) == ["timestamp", "open", "high", "low", "close", "volume"]
            rows.extend((int(r[0]), tuple(r[1:])) for r in reader)
    return tuple(rows)


def csv_row_at(symbol: str, interval: str, open_ms: int) -> tuple[str, ...]:
    rows = csv_rows(symbol, interval)
    first = rows[0][0]
    step = {"1m": MINUTE, "5m": 5 * MINUTE, "1h": HOUR}[interval]
    row = rows[(open_ms - first) // step]  # the files have no gaps
    assert row[0] == open_ms
    return row[1]


def b8(text: str) -> str:
    """Recorded number text in Binance's 8-decimal form."""
    return f"{Decimal(text):.8f}"
