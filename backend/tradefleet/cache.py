"""A small key-value cache shared by the workers: Redis when ``REDIS_URL`` is set, else process memory.

Used for candles (keyed by market and candle time), for single-flight locks around exchange
requests, and for the scheduler's "already enqueued" marks. Values are bytes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Protocol

from tradefleet.config import get_settings


class Cache(Protocol):
    def get(self, key: str) -> bytes | None: ...
    def set(self, key: str, value: bytes, ttl_s: int) -> None: ...
    def add(self, key: str, value: bytes, ttl_s: int) -> bool:
        """Set only if absent; True if this call set it."""
    def incr(self, key: str, amount: int = 1) -> int: ...
    def lock(self, key: str, timeout_s: float) -> "contextmanager": ...


class RedisCache:
    """The cache in Redis: shared by every worker process and host."""

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)

    def get(self, key: str) -> bytes | None:
        return self.client.get(key)

    def set(self, key: str, value: bytes, ttl_s: int) -> None:
        self.client.set(key, value, ex=ttl_s)

    def add(self, key: str, value: bytes, ttl_s: int) -> bool:
        return bool(self.client.set(key, value, ex=ttl_s, nx=True))

    def incr(self, key: str, amount: int = 1) -> int:
        return int(self.client.incrby(key, amount))

    @contextmanager
    def lock(self, key: str, timeout_s: float) -> Iterator[None]:
        # redis-py's Lock: a token-checked SET NX PX, released only by its holder.
        with self.client.lock(f"lock:{key}", timeout=timeout_s, blocking_timeout=timeout_s):
            yield


class LocalCache:
    """The cache in this process's memory (the embedded ``make run`` defaults, without Redis)."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[float, bytes]] = {}
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def _alive(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[0] < time.monotonic():
            self._data.pop(key, None)
            return None
        return item[1]

    def get(self, key: str) -> bytes | None:
        with self._guard:
            return self._alive(key)

    def set(self, key: str, value: bytes, ttl_s: int) -> None:
        with self._guard:
            if len(self._data) > 10_000:
                now = time.monotonic()
                self._data = {k: v for k, v in self._data.items() if v[0] >= now}
            self._data[key] = (time.monotonic() + ttl_s, value)

    def add(self, key: str, value: bytes, ttl_s: int) -> bool:
        with self._guard:
            if self._alive(key) is not None:
                return False
            self._data[key] = (time.monotonic() + ttl_s, value)
            return True

    def incr(self, key: str, amount: int = 1) -> int:
        with self._guard:
            current = int(self._alive(key) or 0) + amount
            self._data[key] = (time.monotonic() + 86_400, str(current).encode())
            return current

    @contextmanager
    def lock(self, key: str, timeout_s: float) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        if not lock.acquire(timeout=timeout_s):
            raise TimeoutError(f"could not lock {key} in {timeout_s} s")
        try:
            yield
        finally:
            lock.release()


@lru_cache
def get_cache() -> Cache:
    """The process-wide cache for ``Settings.REDIS_URL``."""
    url = get_settings().REDIS_URL
    return RedisCache(url) if url else LocalCache()
