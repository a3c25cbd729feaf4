"""Timeframes and candle times: the one place that reads a timeframe and converts between epoch
milliseconds, datetimes and ISO 8601 text.

Timeframes use ccxt's notation (``Exchange.parse_timeframe``): a positive whole number and a unit,
``s`` (second), ``m`` (minute), ``h``, ``d``, ``w`` (week), ``M`` (a 30-day month) or ``y`` (a 365-day
year), e.g. ``"5m"``, ``"1h"``, ``"1d"``. Candle times are epoch milliseconds (UTC), as ccxt gives them;
other times are timezone-aware UTC datetimes.

Every error is a :class:`TimeValueError` (a ``ValueError``) whose message names the value; callers
with their own error type (``BacktestError``, ``CandleDataError``) turn it into theirs.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import numpy as np

UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800, "M": 2_592_000, "y": 31_536_000}
"""Seconds per timeframe unit, as ccxt counts them (a month is 30 days, a year 365)."""

WEEK_OFFSET_MS = 4 * 86_400_000
"""Weekly candles open on Monday 00:00 UTC, four days after the epoch (a Thursday), as Binance's ``1w``."""

_TIMEFRAME = re.compile(r"^([1-9][0-9]*)([smhdwMy])$")
_FIXED_TIMEFRAME = re.compile(r"[1-9][0-9]*[smhdw]")


class TimeValueError(ValueError):
    """A timeframe or a time that cannot be read; the message names the value."""


def timeframe_seconds(timeframe: str) -> int:
    """A ccxt timeframe (``"5m"``, ``"1h"``, ``"1d"``; surrounding spaces ignored) in seconds.
    Raises :class:`TimeValueError`."""
    match = _TIMEFRAME.match(str(timeframe).strip())
    if not match:
        raise TimeValueError(f"unknown timeframe {timeframe!r} (use ccxt notation: 1m, 5m, 1h, 1d...)")
    return int(match.group(1)) * UNIT_S[match.group(2)]


def timeframe_ms(timeframe: str) -> int:
    """The length of a ccxt timeframe in milliseconds (``"1m"`` → 60000). Raises :class:`TimeValueError`."""
    return timeframe_seconds(timeframe) * 1000


def timeframe_name(seconds: int) -> str:
    """Seconds → the shortest ccxt timeframe name (``300`` → ``"5m"``; weeks, days, hours, minutes,
    else seconds)."""
    for unit in ("w", "d", "h", "m"):
        if seconds % UNIT_S[unit] == 0:
            return f"{seconds // UNIT_S[unit]}{unit}"
    return f"{seconds}s"


def timeframe_alignment(timeframe: str) -> tuple[int, int]:
    """``(length_ms, offset_ms)`` of a fixed-length timeframe: its candles open at ``offset + k * length``.

    Aligned to the epoch, except weeks, which open on Monday 00:00 UTC (:data:`WEEK_OFFSET_MS`), as
    Binance's ``1w`` klines do. Calendar months and years have no fixed length and are refused.
    Raises :class:`TimeValueError` for an unknown or calendar timeframe.
    """
    if not _FIXED_TIMEFRAME.fullmatch(timeframe or ""):
        raise TimeValueError(
            f"unsupported timeframe {timeframe!r}: use a fixed-length ccxt timeframe such as 1m, 5m, 1h, 1d, 1w"
        )
    return timeframe_ms(timeframe), WEEK_OFFSET_MS if timeframe.endswith("w") else 0


def last_closed_candle_ms(now_ms: int, timeframe: str) -> int:
    """The open time (epoch ms) of the latest candle that has closed at ``now_ms``.

    A candle opening at ``t`` closes at ``t + timeframe_ms``; the candle containing ``now_ms`` opens
    at ``floor(now_ms / tf) * tf`` and is still forming, so the last closed one opens one tf earlier.
    """
    tf = timeframe_ms(timeframe)
    return (now_ms // tf) * tf - tf


def datetime_ms(moment: datetime) -> int:
    """A timezone-aware datetime → epoch milliseconds (sub-millisecond parts dropped)."""
    return int(moment.timestamp() * 1000)


def ms_datetime(ms: int) -> datetime:
    """Epoch milliseconds → a UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, UTC)


def iso_ms(ms: int | None) -> str | None:
    """Epoch milliseconds → ISO 8601 UTC (``2024-01-01T00:05:00Z``); ``None`` stays ``None``."""
    if ms is None:
        return None
    return ms_datetime(ms).isoformat().replace("+00:00", "Z")


def iso_ms_array(ms: np.ndarray) -> list[str]:
    """Epoch ms → ISO 8601 UTC strings, vectorised (the same text as :func:`iso_ms` for whole seconds)."""
    text = np.datetime_as_string(np.asarray(ms, dtype="int64").astype("datetime64[ms]"), unit="s")
    return [f"{t}Z" for t in text.tolist()]


def parse_time_ms(value: Any, what: str) -> int | None:
    """An ISO 8601 time (no zone = UTC), a datetime or ``pandas.Timestamp``, or epoch ms (an integer)
    → epoch ms; ``None`` stays ``None``. Raises :class:`TimeValueError` naming ``what``."""
    import pandas as pd

    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise TimeValueError(f"{what}: cannot read {value!r} as a time (use ISO 8601, e.g. 2024-03-01T00:00Z)") \
            from exc
    if stamp is pd.NaT:
        raise TimeValueError(f"{what}: {value!r} is not a time")
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return int(stamp.tz_convert("UTC").value // 1_000_000)


__all__ = [
    "TimeValueError", "UNIT_S", "WEEK_OFFSET_MS", "datetime_ms", "iso_ms", "iso_ms_array", "last_closed_candle_ms",
    "ms_datetime", "parse_time_ms", "timeframe_alignment", "timeframe_ms", "timeframe_name", "timeframe_seconds",
]
