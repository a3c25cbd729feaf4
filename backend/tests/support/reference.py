"""The tests' own reference computations, written independently of the platform's code: the
recorded candles, SMA crossovers and the paper fill model, so that engine and end-to-end tests can
check the platform's trades against numbers they derived themselves."""

from __future__ import annotations

import gzip
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[3] / "data" / "ohlcv"


def load_candles(symbol: str = "BTCUSDT", timeframe: str = "1m") -> dict[str, np.ndarray]:
    """The recorded CSV as arrays: ``time`` (open time, epoch ms), ``open``...``close``."""
    path = next(DATA.glob(f"binance_spot_{symbol}_{timeframe}_*.csv.gz"))
    with gzip.open(path, "rt") as handle:
        rows = [line.strip().split(",") for line in handle.readlines()[1:]]
    array = np.array(rows, dtype="float64")
    return {"time": array[:, 0].astype("int64"), "open": array[:, 1], "high": array[:, 2],
            "low": array[:, 3], "close": array[:, 4], "volume": array[:, 5]}


def sma(values: np.ndarray, n: int) -> np.ndarray:
    """Simple moving average with NaN for the first n-1 rows (cumulative-sum form)."""
    out = np.full(len(values), np.nan)
    sums = np.cumsum(np.insert(values, 0, 0.0))
    out[n - 1:] = (sums[n:] - sums[:-n]) / n
    return out


def crossovers(close: np.ndarray, fast: int, slow: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean arrays: the fast SMA crossed above (``up``) / below (``down``) the slow one at row t."""
    f, s = sma(close, fast), sma(close, slow)
    up = np.zeros(len(close), bool)
    down = np.zeros(len(close), bool)
    for t in range(1, len(close)):
        if math.isnan(s[t]) or math.isnan(s[t - 1]):
            continue
        above, was_above = f[t] > s[t], f[t - 1] > s[t - 1]
        up[t] = above and not was_above
        down[t] = was_above and not above
    return up, down


@dataclass
class RefTrade:
    entry_time_ms: int
    entry_price: float
    exit_time_ms: int
    exit_price: float
    amount: float
    entry_fee: float
    exit_fee: float

    @property
    def pnl(self) -> float:
        return self.amount * (self.exit_price - self.entry_price) - self.entry_fee - self.exit_fee


def floor_step(value: float, step: float) -> float:
    return math.floor(value / step + 1e-9) * step


def expected_trades(candles: dict[str, np.ndarray], *, first_ms: int, last_ms: int, fast: int, slow: int,
                    stake: float, fee: float, step: float) -> list[RefTrade]:
    """Closed trades of a long-only SMA crossover evaluated on every candle from ``first_ms`` to
    ``last_ms``: a crossover on candle t's close is filled at candle t+1's open, fee in quote."""
    up, down = crossovers(candles["close"], fast, slow)
    times = candles["time"]
    cash, amount, entry = stake, 0.0, None
    pending: str | None = None
    trades: list[RefTrade] = []
    start, end = int(np.searchsorted(times, first_ms)), int(np.searchsorted(times, last_ms))
    for t in range(start, end + 1):
        price = candles["open"][t]
        if pending == "buy":
            amount = floor_step(cash / (price * (1 + fee)), step)
            entry = (int(times[t]), price, amount * price * fee)
            cash -= amount * price * (1 + fee)
        elif pending == "sell":
            exit_fee = amount * price * fee
            trades.append(RefTrade(entry[0], entry[1], int(times[t]), price, amount, entry[2], exit_fee))
            cash += amount * price - exit_fee
            amount = 0.0
        pending = None
        if t < slow:
            continue
        if amount > 0 and down[t]:
            pending = "sell"
        elif amount == 0 and up[t]:
            pending = "buy"
    return trades
