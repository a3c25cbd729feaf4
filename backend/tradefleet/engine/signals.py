"""A tick's strategies and their signals: each run's pinned strategy version with its validated
parameters, and the ``signals()`` of each (version, parameters, window start) computed once per tick.

Runs of the same strategy version and parameters on one market share one computation (and its log
lines). For sandboxed versions, :meth:`TickSignals.prefetch` asks each runner once per tick for every
parameter set the batch needs, instead of once per run.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel import Session

from tradefleet.config import Settings
from tradefleet.engine import strategy_params
from tradefleet.engine.run_rows import RunRow
from tradefleet.engine.window import TickWindow
from tradefleet.models import RunMode
from tradefleet.strategy.base import Strategy
from tradefleet.strategy.context import RunLogger
from tradefleet.strategy.guard import SignalReader, StrategyError, call_guarded, compute_signals
from tradefleet.strategy.params import ParamError
from tradefleet.sandbox.versions import UnknownVersion, current_bundled_version_id, strategy_for_version

log = logging.getLogger(__name__)

SignalsKey = tuple[str, str, int]
"""(strategy version's content hash or name, parameters as JSON, window start row)."""


class TickSignals:
    """The strategies and signals of one tick's runs, on one :class:`TickWindow`."""

    def __init__(self, session: Session, window: TickWindow, settings: Settings) -> None:
        self.session = session
        self.window = window
        self.settings = settings
        self._signals: dict[SignalsKey, tuple[SignalReader, list[tuple[str, str]]]] = {}
        self._errors: dict[SignalsKey, StrategyError] = {}

    def strategy(self, run: RunRow) -> tuple[Strategy, str, int]:
        """The run's strategy instance (of the version it pins), its parameters as JSON and the candles
        one evaluation needs. A run stored before versions existed is pinned here to the current
        bundled version of its strategy (written with the tick). Raises :class:`StrategyError` when the
        version cannot be loaded or the parameters are no longer valid."""
        if run.strategy_version_id is None:
            run.strategy_version_id = current_bundled_version_id(self.session, run.strategy)
        try:
            if run.strategy_version_id is None:
                raise UnknownVersion(run.strategy)
            klass = strategy_for_version(run.strategy_version_id, session=self.session)
        except UnknownVersion as exc:
            raise StrategyError(f"strategy {run.strategy!r} is not available (no such version)") from exc
        except Exception as exc:  # the sandbox's StrategyLoadError / SandboxUnavailable
            from tradefleet.sandbox import SandboxUnavailable, StrategyLoadError

            if isinstance(exc, (StrategyLoadError, SandboxUnavailable)):
                raise StrategyError(f"strategy {run.strategy!r} cannot be run: "
                                    f"{getattr(exc, 'message', None) or exc}") from exc
            raise
        raw = strategy_params.params_key(run.params)
        logger = logging.getLogger(f"tradefleet.strategy.{run.strategy}")
        known = strategy_params.known(klass, raw)
        if known is not None:
            return klass(known[0], logger=logger), raw, known[1]
        try:
            params = call_guarded(klass.validate_params, run.params, timeout_s=self.settings.STRATEGY_TIMEOUT_S,
                                  what=f"{run.strategy} parameter check")
        except StrategyError as exc:
            if isinstance(exc.__cause__, ParamError):
                raise StrategyError(f"parameters no longer valid for {run.strategy}: {exc.__cause__}") from exc
            raise
        strategy = klass(params, logger=logger)
        need = int(call_guarded(strategy.required_candles, timeout_s=self.settings.STRATEGY_TIMEOUT_S,
                                what=f"{run.strategy}.startup_candles"))
        strategy_params.remember(klass, raw, params, need)
        return strategy, raw, need

    @staticmethod
    def _key(strategy: Strategy, run: RunRow, key_params: str, start: int) -> SignalsKey:
        proxy = getattr(strategy, "proxy", None)
        return (proxy.content_hash if proxy is not None else run.strategy, key_params, start)

    def signals(self, strategy: Strategy, run: RunRow, key_params: str,
                start: int) -> tuple[SignalReader, list[tuple[str, str]]]:
        """The strategy's signals on the window from row ``start``, and the lines it logged meanwhile
        (``(level, text)``). Raises :class:`StrategyError` (also when a prefetch of the same computation
        failed)."""
        key = self._key(strategy, run, key_params, start)
        failed = self._errors.get(key)
        if failed is not None:
            raise StrategyError(str(failed))
        if key not in self._signals:
            logger = RunLogger(run.strategy)
            strategy.logger = logger
            # The iloc slice is this call's own frame (copy-on-write): no defensive copy needed.
            frame = self.window.frame.iloc[start:]
            signals = SignalReader(compute_signals(strategy, frame, copy=False,
                                                   timeout_s=self.settings.STRATEGY_TIMEOUT_S), strategy.name)
            self._signals[key] = (signals, logger.take())
        return self._signals[key]

    def prefetch(self, runs: list[RunRow]) -> None:
        """Compute, in one request per sandboxed strategy version, the signals of every parameter set and
        window start this batch's runs need. A run whose strategy cannot be resolved is left to its
        tick, which pauses it; a failed request leaves each run to compute its own."""
        n = len(self.window)
        wanted: dict[str, tuple[Any, dict[SignalsKey, tuple[dict, int]]]] = {}
        for run in runs:
            try:
                strategy, key_params, need = self.strategy(run)
            except StrategyError:
                continue
            proxy = getattr(strategy, "proxy", None)
            if proxy is None or not strategy.has_signals():
                continue
            if run.mode == RunMode.live:
                if run.last_candle_ms is not None and self.window.time_ms(-1) <= run.last_candle_ms:
                    continue
                first = n - 1
            else:
                first, _ = self.window.first_unseen(run.last_candle_ms, self.settings.ENGINE_MAX_CATCHUP_CANDLES)
                if first is None:
                    continue
            start = max(0, first - (need - 1))
            key = self._key(strategy, run, key_params, start)
            if key not in self._signals:
                wanted.setdefault(proxy.content_hash, (proxy, {}))[1][key] = (strategy.params, start)
        for proxy, items in wanted.values():
            if len(items) < 2:
                continue  # one computation: the run's tick asks for it as it goes
            try:
                # The proxy enforces the budget itself (SIGKILL of the runner), per request and per retry.
                results = proxy.signals_many(self.window.frame, [(p, s, n) for p, s in items.values()],
                                             budget_s=self.settings.STRATEGY_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - then each run's tick computes its own and pauses only itself
                log.exception("prefetching the signals of %s failed", proxy.name)
                continue
            for key, result in zip(items, results):
                if isinstance(result, StrategyError):
                    self._errors[key] = result
                    continue
                frame, lines = result
                self._signals[key] = (SignalReader(frame, proxy.name), lines)


__all__ = ["TickSignals"]
