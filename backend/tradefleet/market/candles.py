"""Candles through ccxt's ``fetch_ohlcv``, cached by market and candle time.

One fetch per market per closed candle, however many runs and worker processes want it: the cache
(Redis when configured) holds the window and a lock makes concurrent callers wait for the first.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from functools import lru_cache

import ccxt
import numpy as np
import pandas as pd

from tradefleet.cache import get_cache
from tradefleet.config import get_settings
from tradefleet.market.exchange import make_exchange
from tradefleet.models.candle import OHLCV_COLUMNS
from tradefleet.times import timeframe_ms



@dataclass(frozen=True)
class Market:
    """A market as the engine groups runs: ``(exchange, symbol, timeframe)`` in ccxt notation."""

    exchange: str
    symbol: str
    timeframe: str

    @property
    def key(self) -> str:
        return f"{self.exchange}:{self.symbol}:{self.timeframe}"

    @property
    def timeframe_ms(self) -> int:
        return timeframe_ms(self.timeframe)


class MarketDataNotReady(Exception):
    """The exchange does not serve the requested candle yet (its clock and its klines disagree)."""


def frame_from_ohlcv(rows: list[list[float]] | np.ndarray) -> pd.DataFrame:
    """ccxt OHLCV rows ``[ms, open, high, low, close, volume]`` → DataFrame indexed by UTC open time,
    float columns ``open, high, low, close, volume``, plus int64 column ``time_ms``."""
    array = np.asarray(rows, dtype="float64").reshape(-1, 6)
    times = array[:, 0].astype("int64")
    frame = pd.DataFrame(array[:, 1:], columns=OHLCV_COLUMNS,
                         index=pd.DatetimeIndex(pd.to_datetime(times, unit="ms", utc=True), name="time"))
    frame["time_ms"] = times
    return frame


_exchange_lock = threading.Lock()


@lru_cache(maxsize=32)
def public_exchange(exchange_id: str) -> ccxt.Exchange:
    """A keyless ccxt exchange per process (markets loaded lazily by ccxt)."""
    return make_exchange(exchange_id)


def fetch_candles_uncached(market: Market, *, until_ms: int, limit: int) -> np.ndarray:
    """Fetch the ``limit`` closed candles ending with the one opening at ``until_ms``.

    Returns an ``(n, 6)`` float64 array of ``[ms, o, h, l, c, v]`` rows, ascending, the last row
    opening at ``until_ms``. Raises :class:`MarketDataNotReady` if the exchange has not got that
    candle yet, and ccxt's exceptions for exchange and network errors.
    """
    exchange = public_exchange(market.exchange)
    tf = market.timeframe_ms
    since = until_ms - (limit - 1) * tf
    with _exchange_lock:  # a ccxt exchange object is not safe across threads
        rows = exchange.fetch_ohlcv(market.symbol, market.timeframe, since=since, limit=limit)
    get_cache().incr(f"metrics:ohlcv_fetches:{market.key}")
    array = np.asarray(rows, dtype="float64").reshape(-1, 6)
    # A real exchange also returns the candle still forming: keep only closed ones.
    array = array[array[:, 0] <= until_ms]
    if not len(array) or int(array[-1, 0]) != until_ms:
        raise MarketDataNotReady(f"{market.key}: candle {until_ms} not served yet")
    return array


def _pack(limit: int, array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    buffer.write(limit.to_bytes(4, "big"))
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _unpack(data: bytes) -> tuple[int, np.ndarray]:
    return int.from_bytes(data[:4], "big"), np.load(io.BytesIO(data[4:]), allow_pickle=False)


def get_candles(market: Market, *, until_ms: int, limit: int) -> pd.DataFrame:
    """The closed candles of ``market`` up to the one opening at ``until_ms``, at most ``limit`` rows
    (fewer when the exchange has less history). Cached by ``(market, until_ms)``; concurrent callers
    for the same key wait on one fetch. See :func:`frame_from_ohlcv` for the frame's shape."""
    cache = get_cache()
    key = f"ohlcv:{market.key}:{until_ms}"
    data = cache.get(key)
    if data is not None:
        fetched_limit, array = _unpack(data)
        if fetched_limit >= limit:
            return frame_from_ohlcv(array[-limit:])
    with cache.lock(key, timeout_s=30):
        data = cache.get(key)
        if data is not None:
            fetched_limit, array = _unpack(data)
            if fetched_limit >= limit:
                return frame_from_ohlcv(array[-limit:])
        array = fetch_candles_uncached(market, until_ms=until_ms, limit=limit)
        cache.set(key, _pack(limit, array), get_settings().MARKET_CACHE_TTL_S)
    return frame_from_ohlcv(array)


def fetch_exchange_time(exchange_id: str) -> int:
    """The exchange's clock (epoch ms) through ccxt's ``fetch_time``.

    The engine takes time from the market, never from the local clock, so the same code runs at 1x
    against an exchange and at 60x against the simulator."""
    with _exchange_lock:
        return int(public_exchange(exchange_id).fetch_time())


def cached_window(market: Market, until_ms: int) -> pd.DataFrame | None:
    """The window :func:`get_candles` cached for ``(market, until_ms)``, or None: never fetches (the API
    reads what the engine fetched; with the in-process cache of the embedded mode it sees nothing)."""
    data = get_cache().get(f"ohlcv:{market.key}:{until_ms}")
    if data is None:
        return None
    return frame_from_ohlcv(_unpack(data)[1])
