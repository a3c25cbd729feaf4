"""Shared bits of the candle store tests: the recorded files and small CSV writers."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd

from tradefleet.config import REPO_ROOT

DATA_DIR = REPO_ROOT / "data" / "ohlcv"
BTC_1H = DATA_DIR / "binance_spot_BTCUSDT_1h_2024-01_2024-09.csv.gz"
BTC_5M = DATA_DIR / "binance_spot_BTCUSDT_5m_2024-01_2024-09.csv.gz"
HOUR = 3_600_000
T0 = 1704067200000  # 2024-01-01 00:00 UTC, the first recorded candle
MAR_1 = 1709251200000  # 2024-03-01 00:00 UTC


def recorded(path: Path = BTC_1H) -> pd.DataFrame:
    """A recorded file as pandas reads it (the reference the tests compare against)."""
    return pd.read_csv(path)


def write_csv(path: Path, frame: pd.DataFrame | str, *, gz: bool | None = None) -> Path:
    """Write ``frame`` (or raw text) as CSV at ``path``; gzip when ``gz`` (default: name ends .gz)."""
    text = frame if isinstance(frame, str) else frame.to_csv(index=False)
    data = text.encode()
    if gz if gz is not None else path.name.endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)
    return path
