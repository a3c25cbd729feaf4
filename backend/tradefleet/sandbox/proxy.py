"""The parent side: proxies that stand in for strategy classes, over the runners of
:mod:`tradefleet.sandbox.runners`.

:func:`load_strategy` starts (or reuses) the runner of a source file and returns a :class:`StrategyProxy`,
which the platform uses where it used a :class:`~tradefleet.strategy.base.Strategy` subclass: the same
attributes (``name``, ``timeframe``, ``stoploss``...), ``validate_params``, and instances with
``startup_candles``, ``signals(candles)`` and ``on_candle(ctx)``. Each call is one request to the runner.

Budgets are the parent's: a request must be answered by the deadline of the enclosing
:func:`~tradefleet.strategy.guard.call_guarded` (else ``STRATEGY_TIMEOUT_S``), or the runner is killed with
SIGKILL, which nothing inside can catch or delay. A runner that dies, is killed, or sends anything but a
valid reply (wrong shape, NaN where numbers are due, over the size caps) is stopped; the call raises
:class:`~tradefleet.strategy.guard.StrategyError` with a reason for the trader, and the next call starts a
fresh runner. Runners are long-lived: one per source file (content hash) per platform process, reused by
every run, backtest and request of that version, at most ``STRATEGY_RUNNERS_PER_PROCESS`` of them.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import OrderedDict
from typing import Any

import numpy as np
import pandas as pd

from tradefleet.config import get_settings
from tradefleet.models.candle import OHLCV_COLUMNS
from tradefleet.sandbox.errors import RunnerFailure, SandboxUnavailable, StrategyLoadError
from tradefleet.sandbox.launch import safe_label, sandbox_status
from tradefleet.sandbox.manifest import StrategyManifest
from tradefleet.sandbox.runners import RunnerProcess, content_hash, runner_pool
from tradefleet.strategy.context import CandleContext, CandleWindow
from tradefleet.strategy.guard import StrategyError, current_deadline, deadline_paused
from tradefleet.strategy.params import ParamError

log = logging.getLogger(__name__)

LOG_LEVELS = ("info", "warning", "error")
MAX_LOG_LINES = 100
MAX_ORDERS = 10


class _Shown:
    """A signal value that was not a boolean in the runner; only its repr came back."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _budget() -> float:
    deadline = current_deadline()
    if deadline is None:
        return get_settings().STRATEGY_TIMEOUT_S
    return max(0.05, deadline - time.monotonic())


def _check_logs(value: Any) -> list[tuple[str, str]]:
    if not isinstance(value, list) or len(value) > MAX_LOG_LINES:
        raise RunnerFailure("it sent an invalid reply (log lines)")
    out = []
    for item in value:
        if (not isinstance(item, list) or len(item) != 2 or item[0] not in LOG_LEVELS
                or not isinstance(item[1], str)):
            raise RunnerFailure("it sent an invalid reply (log line)")
        out.append((item[0], item[1][:1000]))
    return out


def _emit(logger: Any, lines: list[tuple[str, str]]) -> None:
    if logger is None:
        return
    for level, text in lines:
        getattr(logger, level)(text)


def _finite(value: Any, what: str, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RunnerFailure(f"it sent an invalid reply ({what})")
    return float(value)


class StrategyProxy:
    """A strategy version as the platform sees it: its manifest, and calls that go to its runner.

    Stands in for a :class:`~tradefleet.strategy.base.Strategy` subclass: class attributes from the manifest,
    :meth:`validate_params`, and calling it (``proxy(params, logger=...)``) makes a
    :class:`StrategyInstance`. Raises :class:`StrategyError` for anything the strategy does wrong and
    :class:`ParamError` for invalid parameters."""

    def __init__(self, *, manifest: StrategyManifest, source: bytes, digest: str, label: str, trusted: bool,
                 sandboxed: bool) -> None:
        self.manifest = manifest
        self.source, self.content_hash, self.label = source, digest, label
        self.trusted, self.sandboxed = trusted, sandboxed
        self.name = manifest.name
        self.__name__ = manifest.class_name
        self.timeframe = manifest.timeframe
        self.stoploss = manifest.stoploss
        self.take_profit = manifest.take_profit
        self.trailing_stop = manifest.trailing_stop
        self.position_size = manifest.position_size
        self.startup_candles = manifest.startup_candles
        self.INTERFACE_VERSION = manifest.interface_version
        self._validated: OrderedDict[str, tuple[dict[str, Any], int]] = OrderedDict()

    def __repr__(self) -> str:
        return f"<StrategyProxy {self.name} {self.content_hash[:12]} ({'sandboxed' if self.sandboxed else 'unsandboxed'})>"

    # ------------------------------------------------------------------ the class API
    def has_signals(self) -> bool:
        return self.manifest.has_signals

    def is_stateful(self) -> bool:
        return self.manifest.stateful

    def description(self) -> str:
        return self.manifest.description

    def params_schema(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.manifest.params_schema))

    def check_definition(self) -> None:
        """Checked by the runner when it loaded the file (a broken file never yields a proxy)."""

    def __call__(self, params: dict[str, Any] | None = None, *, logger: Any = None) -> "StrategyInstance":
        return StrategyInstance(self, dict(params or {}), logger)

    # ------------------------------------------------------------------ requests
    def call(self, header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None,
             budget_s: float | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """One request to this version's runner (started if needed). Raises :class:`StrategyError`."""
        runner = runner_pool().get(self)
        with runner.lock:
            if not runner.alive:
                try:
                    with deadline_paused():  # starting is not the strategy's time
                        runner.start()
                except StrategyLoadError as exc:
                    raise StrategyError(f"{self.name}: {exc.message}") from exc
            try:
                return runner.request(header, arrays, _budget() if budget_s is None else budget_s)
            except RunnerFailure as exc:
                raise StrategyError(f"{self.name}: the strategy's runner failed: {exc}; it will be restarted") \
                    from exc

    def _validate(self, raw: dict[str, Any] | None) -> tuple[dict[str, Any], int]:
        key = json.dumps(raw or {}, sort_keys=True, default=str)
        known = self._validated.get(key)
        if known is not None:
            return known
        reply, _ = self.call({"op": "validate", "params": raw or {}})
        if not reply.get("ok"):
            if reply.get("kind") == "param":
                raise ParamError(str(reply.get("field", "params"))[:200], str(reply.get("message", "invalid"))[:500])
            raise StrategyError(str(reply.get("message", f"{self.name} parameter check failed"))[:500])
        values, startup = reply.get("values"), reply.get("startup")
        if not isinstance(values, dict) or isinstance(startup, bool) or not isinstance(startup, int) \
                or not 0 <= startup <= 10**7:
            raise StrategyError(f"{self.name}: the strategy's runner sent an invalid parameter check reply")
        self._validated[key] = (values, startup)
        self._validated[json.dumps(values, sort_keys=True, default=str)] = (values, startup)
        while len(self._validated) > 10_000:
            self._validated.popitem(last=False)
        return values, startup

    def validate_params(self, raw: dict[str, Any] | None) -> dict[str, Any]:
        """Every parameter with its value, checked by the strategy's declarations and ``check_params``
        in the runner. Raises :class:`ParamError` (field, message) or :class:`StrategyError`."""
        return dict(self._validate(raw)[0])

    def startup_for(self, params: dict[str, Any]) -> int:
        """``startup_candles`` of an instance with these (validated) parameters."""
        key = json.dumps(params, sort_keys=True, default=str)
        known = self._validated.get(key)
        if known is not None:
            return known[1]
        reply, _ = self.call({"op": "startup", "params": params})
        startup = reply.get("startup")
        if not reply.get("ok"):
            raise StrategyError(str(reply.get("message", f"{self.name}.startup_candles failed"))[:500])
        if isinstance(startup, bool) or not isinstance(startup, int) or not 0 <= startup <= 10**7:
            raise StrategyError(f"{self.name}.startup_candles must be a non-negative integer")
        self._validated[key] = (params, startup)
        return startup

    def signals_many(self, candles: pd.DataFrame, items: list[tuple[dict[str, Any], int, int]],
                     budget_s: float | None = None) -> list[tuple[pd.DataFrame, list[tuple[str, str]]] | StrategyError]:
        """``signals()`` for several parameter sets on one window, in one request: ``items`` are
        ``(params, start, stop)`` row ranges of ``candles``. Returns per item ``(frame, log lines)`` (frame
        indexed like ``candles.iloc[start:stop]`` with columns ``enter_long``, ``exit_long``) or the
        :class:`StrategyError` of that item. When the whole request fails (the runner timed out or died)
        and it held several items, each is retried alone, so only the culprit's item fails."""
        arrays = {"time_ms": candles["time_ms"].to_numpy(dtype="int64")}
        for name in OHLCV_COLUMNS:
            arrays[name] = candles[name].to_numpy(dtype="float64")
        n = len(candles)
        for _, start, stop in items:
            if not 0 <= start <= stop <= n:
                raise ValueError(f"row range {start}..{stop} outside a window of {n} candles")
        header = {"op": "signals", "items": [{"params": p, "start": int(a), "stop": int(b)} for p, a, b in items]}
        try:
            reply, out = self.call(header, arrays, budget_s)
        except StrategyError as exc:
            if len(items) == 1:
                return [exc]
            # Each alone, with a budget of its own: only the item that timed out or crashed fails.
            alone = budget_s if budget_s is not None else get_settings().STRATEGY_TIMEOUT_S
            return [self.signals_many(candles, [item], alone)[0] for item in items]
        results = reply.get("items")
        if not isinstance(results, list) or len(results) != len(items):
            self._discard_runner()
            return [StrategyError(f"{self.name}: the strategy's runner sent an invalid signals reply")] * len(items)
        answers: list[Any] = []
        invalid = False
        for k, (item, result) in enumerate(zip(items, results)):
            _, start, stop = item
            if not isinstance(result, dict):
                answers.append(StrategyError(f"{self.name}: invalid signals reply"))
                invalid = True
                continue
            if not result.get("ok"):
                answers.append(StrategyError(str(result.get("message", f"{self.name}.signals() failed"))[:500]))
                continue
            try:
                lines = _check_logs(result.get("logs", []))
                frame = self._signal_frame(candles.index[start:stop], out.get(f"e{k}"), out.get(f"x{k}"),
                                           result.get("bad") or {})
            except RunnerFailure as exc:
                answers.append(StrategyError(f"{self.name}: the strategy's runner sent an invalid reply: {exc}"))
                invalid = True
                continue
            answers.append((frame, lines))
        if invalid:
            self._discard_runner()
        return answers

    def _discard_runner(self) -> None:
        """Stop this version's runner after a reply that failed the checks: its strategy owns the process
        and may have written that reply itself, so nothing it sends afterwards is believed."""
        runner = runner_pool().get(self)
        with runner.lock:
            runner.stop()

    def _signal_frame(self, index: pd.Index, enter: Any, exit_: Any, bad: Any) -> pd.DataFrame:
        if not isinstance(bad, dict):
            raise RunnerFailure("bad values")
        columns = {}
        for column, codes in (("enter_long", enter), ("exit_long", exit_)):
            if not isinstance(codes, np.ndarray) or codes.dtype != np.uint8 or len(codes) != len(index):
                raise RunnerFailure(f"{column} codes of the wrong shape")
            if len(codes) and int(codes.max()) > 3:
                raise RunnerFailure(f"{column} codes out of range")
            if not len(codes) or int(codes.max()) <= 1:
                columns[column] = codes.astype(bool)
                continue
            values = np.empty(len(codes), dtype=object)
            values[codes == 0] = False
            values[codes == 1] = True
            values[codes == 2] = np.nan
            shown = _Shown(str(bad.get(column, "a value that is not a boolean"))[:200])
            values[codes == 3] = shown
            columns[column] = values
        return pd.DataFrame(columns, index=index)

    def on_candle(self, params: dict[str, Any], ctx: CandleContext, logger: Any) -> None:
        """Run ``on_candle`` in the runner on a snapshot of ``ctx``, then apply what it did to ``ctx``: its
        orders through ``ctx.buy``/``ctx.sell`` (checked again there), its state, its log lines."""
        runner = runner_pool().get(self)
        window = ctx.window
        arrays = None
        if isinstance(window, CandleWindow):
            frame, start, stop = window.frame, window.start, window.stop
        else:
            frame = ctx.candles
            start, stop = 0, len(frame)
        key = (id(frame), len(frame), int(frame["time_ms"].iat[0]) if len(frame) else 0,
               int(frame["time_ms"].iat[-1]) if len(frame) else 0)
        c = ctx.candle
        header = {"op": "on_candle", "start": int(start), "stop": int(stop),
                  "candle": [int(c.time_ms), float(c.open), float(c.high), float(c.low), float(c.close),
                             float(c.volume)],
                  "cash": float(ctx.cash), "position": float(ctx.position),
                  "entry_price": None if ctx.entry_price is None else float(ctx.entry_price),
                  "pending": int(ctx.pending), "equity": float(ctx.equity), "state": ctx.state, "params": params}
        with runner.lock:
            if not runner.alive:
                try:
                    with deadline_paused():  # starting is not the strategy's time
                        runner.start()
                except StrategyLoadError as exc:
                    raise StrategyError(f"{self.name}: {exc.message}") from exc
            if runner.window_key != key or runner.window_frame is not frame:
                arrays = {"time_ms": frame["time_ms"].to_numpy(dtype="int64")}
                for name in OHLCV_COLUMNS:
                    arrays[name] = frame[name].to_numpy(dtype="float64")
                runner.window_token = RunnerProcess.new_window_token()
            header["window"] = runner.window_token
            try:
                reply, _ = runner.request(header, arrays, _budget())
            except RunnerFailure as exc:
                raise StrategyError(f"{self.name}: the strategy's runner failed: {exc}; it will be restarted") \
                    from exc
            if arrays is not None:
                runner.window_key, runner.window_frame = key, frame
        if not reply.get("ok"):
            raise StrategyError(str(reply.get("message", f"{self.name}.on_candle() failed"))[:500])
        orders, state = reply.get("orders"), reply.get("state")
        try:
            lines = _check_logs(reply.get("logs", []))
            if not isinstance(orders, list) or len(orders) > MAX_ORDERS or not isinstance(state, dict):
                raise RunnerFailure("orders or state")
            checked = []
            for order in orders:
                if not isinstance(order, list) or len(order) != 2 or order[0] not in ("buy", "sell"):
                    raise RunnerFailure("order")
                checked.append((order[0], _finite(order[1], "order amount", allow_none=order[0] == "sell")))
        except RunnerFailure as exc:
            self._discard_runner()
            raise StrategyError(f"{self.name}: the strategy's runner sent an invalid reply: {exc}") from exc
        _emit(logger if logger is not None else ctx.log, lines)
        ctx.state.clear()
        ctx.state.update(state)
        for side, amount in checked:
            if side == "buy":
                ctx.buy(amount)
            else:
                ctx.sell(amount)


class StrategyInstance:
    """A strategy with its parameters, as the engine and the backtester use one; calls go to the runner."""

    def __init__(self, proxy: StrategyProxy, params: dict[str, Any], logger: Any) -> None:
        self.proxy = proxy
        self.params = params
        self.logger = logger

    name = property(lambda self: self.proxy.name)
    timeframe = property(lambda self: self.proxy.timeframe)
    stoploss = property(lambda self: self.proxy.stoploss)
    take_profit = property(lambda self: self.proxy.take_profit)
    trailing_stop = property(lambda self: self.proxy.trailing_stop)
    position_size = property(lambda self: self.proxy.position_size)

    def has_signals(self) -> bool:
        return self.proxy.has_signals()

    def is_stateful(self) -> bool:
        return self.proxy.is_stateful()

    @property
    def startup_candles(self) -> int:
        return self.proxy.startup_for(self.params)

    def required_candles(self) -> int:
        return int(self.startup_candles) + 1

    def signals(self, candles: pd.DataFrame) -> pd.DataFrame:
        result = self.proxy.signals_many(candles, [(self.params, 0, len(candles))])[0]
        if isinstance(result, StrategyError):
            raise result
        frame, lines = result
        _emit(self.logger, lines)
        return frame

    def on_candle(self, ctx: CandleContext) -> None:
        self.proxy.on_candle(self.params, ctx, self.logger)


_proxies: OrderedDict[tuple[str, bool], StrategyProxy] = OrderedDict()
_proxies_lock = threading.Lock()


def load_strategy(source: bytes, *, label: str, trusted: bool) -> StrategyProxy:
    """The proxy of a strategy file, its runner started (or reused) and its manifest read.

    ``label``: the file name shown in messages. ``trusted``: the file comes from ``STRATEGIES_DIR`` (code
    the server owner put there), which may run unsandboxed when the sandbox is unavailable and
    ``STRATEGY_SANDBOX_ALLOW_UNSANDBOXED_BUNDLED`` is set; uploaded code never does. Raises
    :class:`SandboxUnavailable` or :class:`StrategyLoadError`."""
    if isinstance(source, str):
        source = source.encode()
    digest = content_hash(source)
    with _proxies_lock:
        known = _proxies.get((digest, trusted))
        if known is not None:
            _proxies.move_to_end((digest, trusted))
            return known
    status = sandbox_status()
    if status.available:
        sandboxed = True
    elif trusted and get_settings().STRATEGY_SANDBOX_ALLOW_UNSANDBOXED_BUNDLED:
        sandboxed = False
    elif trusted:
        raise SandboxUnavailable(f"strategy sandbox unavailable: {status.reason}; set "
                                 "STRATEGY_SANDBOX_ALLOW_UNSANDBOXED_BUNDLED=true to run the bundled strategies "
                                 "without it")
    else:
        raise SandboxUnavailable(f"strategy sandbox unavailable: {status.reason}; uploaded strategies cannot run")
    label = safe_label(label)
    runner = RunnerProcess(digest=digest, source=source, label=label, sandboxed=sandboxed)
    with runner.lock:
        raw = runner.start()
        try:
            manifest = StrategyManifest.from_json(raw)
        except ValueError as exc:
            runner.stop()
            raise StrategyLoadError(f"{label}: {exc}") from exc
    proxy = StrategyProxy(manifest=manifest, source=source, digest=digest, label=label, trusted=trusted,
                          sandboxed=sandboxed)
    old = runner_pool().peek(digest)
    if old is not None and old.alive and old.sandboxed == sandboxed:
        with runner.lock:
            runner.stop()  # another thread started one meanwhile: keep that one
    else:
        runner_pool().put_started(digest, runner)
        if old is not None:
            with old.lock:
                old.stop()
    with _proxies_lock:
        _proxies[(digest, trusted)] = proxy
        while len(_proxies) > 1000:
            _proxies.popitem(last=False)
    return proxy
