"""What the simulator's endpoints share: :class:`SimState` (recorded data, clock, market rules, accounts,
faults) with its request-weight and request counters. The app (:mod:`tradefleet.sim.app`) holds one as
``request.app.state.sim``."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tradefleet.sim.accounts import SimAccountStore
from tradefleet.sim.clock import SimClock
from tradefleet.sim.data import MarketData
from tradefleet.sim.faults import FaultInjector
from tradefleet.sim.markets import SymbolRules, build_rules

WEIGHT_SCOPE_KEY = "tradefleet.sim.weight"
"""The ASGI scope key where a handler leaves its request weight (:func:`tradefleet.sim.public.set_weight`)."""


class WeightCounter:
    """Binance's per-IP request weight of the current wall-clock minute (reported; enforced only
    when the app has a ``weight_limit``, see :class:`WeightHeaderMiddleware`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._minute = -1
        self._used: dict[str, int] = {}

    def add(self, client: str, weight: int) -> int:
        """Add ``weight`` for ``client`` and return its weight used in this minute."""
        minute = int(time.time() // 60)
        with self._lock:
            if minute != self._minute:
                self._minute, self._used = minute, {}
            used = self._used.get(client, 0) + weight
            self._used[client] = used
            return used

    def used(self, client: str) -> int:
        """Weight ``client`` has used in the current wall-clock minute."""
        minute = int(time.time() // 60)
        with self._lock:
            return self._used.get(client, 0) if minute == self._minute else 0


class RequestStats:
    """Requests served since start: per path, and per ``(symbol, interval)`` for klines.

    For benchmarks and tests (``GET /sim/stats``): the requests an exchange would have received.
    Thread-safe, counts only (no timing).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: dict[str, int] = {}
        self._klines: dict[tuple[str, str], int] = {}

    def count_path(self, path: str) -> None:
        with self._lock:
            self._paths[path] = self._paths.get(path, 0) + 1

    def count_klines(self, symbol: str, interval: str) -> None:
        with self._lock:
            key = (symbol, interval)
            self._klines[key] = self._klines.get(key, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        """``{"requests": {path: n}, "klines": {symbol: {interval: n}}}`` (sorted)."""
        with self._lock:
            paths = dict(sorted(self._paths.items()))
            klines: dict[str, dict[str, int]] = {}
            for (symbol, interval), n in sorted(self._klines.items()):
                klines.setdefault(symbol, {})[interval] = n
        return {"requests": paths, "klines": klines}


@dataclass
class SimState:
    """Everything the endpoints share: recorded data, clock, market rules, weight and request counters,
    the simulated accounts (:class:`~tradefleet.sim.accounts.SimAccountStore`) and pending faults.

    ``exchange_info_entries[symbol]`` is the prebuilt ``exchangeInfo.symbols`` element.
    """

    data: MarketData
    clock: SimClock
    rules: dict[str, SymbolRules]
    exchange_info_entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    weights: WeightCounter = field(default_factory=WeightCounter)
    stats: RequestStats = field(default_factory=RequestStats)
    accounts: SimAccountStore = field(default_factory=SimAccountStore)
    faults: FaultInjector = field(default_factory=FaultInjector)
    order_limit_10s: int | None = None
    """New orders per account per 10 wall seconds before -1015 (None: not enforced)."""

    @classmethod
    def build(cls, data: MarketData, clock: SimClock, accounts: SimAccountStore | None = None) -> SimState:
        """State over ``data`` with the rules of :func:`~tradefleet.sim.markets.build_rules`."""
        rules = build_rules(data)
        entries = {symbol: r.exchange_info_entry() for symbol, r in rules.items()}
        return cls(data=data, clock=clock, rules=rules, exchange_info_entries=entries,
                   accounts=accounts if accounts is not None else SimAccountStore())


__all__ = ["WEIGHT_SCOPE_KEY", "RequestStats", "SimState", "WeightCounter"]
