"""The simulator's clock: recorded time replayed faster than wall time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class SimClock:
    """Sim time in ms since the epoch (UTC), running ``speed`` times faster than wall time.

    ``now_ms = anchor_ms + (monotonic() - anchor_monotonic) * 1000 * speed``; at creation the anchor
    is ``start_ms``. ``speed=0`` freezes the clock; :meth:`set` and :meth:`advance` move it
    explicitly (and keep it running at ``speed`` from there). Thread-safe: the server thread reads
    it while a test or operator moves it.
    """

    def __init__(
        self,
        start_ms: int,
        speed: float = 60.0,
        *,
        time_source: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self._start_ms = int(start_ms)
        self._speed = float(speed)
        self._time = time_source
        self._lock = threading.Lock()
        self._anchor_ms = float(start_ms)
        self._anchor_t = time_source()

    @property
    def start_ms(self) -> int:
        """Sim time at which the clock was created (ms)."""
        return self._start_ms

    @property
    def speed(self) -> float:
        """Sim milliseconds per wall millisecond (0 = frozen)."""
        return self._speed

    def _now_locked(self) -> float:
        return self._anchor_ms + (self._time() - self._anchor_t) * 1000.0 * self._speed

    def now_ms(self) -> int:
        """Current sim time, integer ms since the epoch (UTC)."""
        with self._lock:
            return int(self._now_locked())

    def set(self, now_ms: int) -> None:
        """Jump to ``now_ms`` (may go backwards); the clock keeps running at ``speed`` from there."""
        with self._lock:
            self._anchor_ms = float(now_ms)
            self._anchor_t = self._time()

    def advance(self, delta_ms: int) -> int:
        """Move the clock by ``delta_ms`` (>= 0) and return the new sim time in ms."""
        if delta_ms < 0:
            raise ValueError("delta_ms must be >= 0; use set() to go back")
        with self._lock:
            now = self._now_locked() + delta_ms
            self._anchor_ms, self._anchor_t = now, self._time()
            return int(now)

    def set_speed(self, speed: float) -> None:
        """Change the speed without moving the current sim time (0 freezes)."""
        if speed < 0:
            raise ValueError("speed must be >= 0")
        with self._lock:
            self._anchor_ms, self._anchor_t = self._now_locked(), self._time()
            self._speed = float(speed)

    def __repr__(self) -> str:
        return f"SimClock(now_ms={self.now_ms()}, speed={self._speed})"
