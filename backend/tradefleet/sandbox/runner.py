"""The strategy runner: runs inside the sandbox, loads one strategy file and answers the parent's requests.

Imports only the standard library, numpy, pandas, the author SDK (:mod:`tradefleet.strategy`) and
:mod:`tradefleet.sandbox.protocol`: nothing of the platform's settings, database or vault is bound into
the sandbox, so nothing of it can be imported here.

Requests (one frame each; every reply is one frame):

- ``validate {params}`` → ``{ok, values, startup}`` or ``{ok: false, kind: "param", field, message}``;
- ``startup {params}`` → ``{ok, startup}``;
- ``signals {items: [{params, start, stop}]}`` with the window as arrays ``time_ms`` (int64) and
  ``open, high, low, close, volume`` (float64) → per item ``{ok, logs, bad}`` and arrays ``e<k>``, ``x<k>``
  (uint8 codes per row of ``[start, stop)``: 0 false, 1 true, 2 missing (NaN, None), 3 not a boolean;
  ``bad`` holds the first such value's repr per column);
- ``on_candle {window, start, stop, candle, cash, position, entry_price, pending, equity, state, params}``
  (the window arrays when ``window`` is new to the runner) → ``{ok, orders, logs, state}``.

A failure of the strategy is ``{ok: false, kind: "error", message}``; the runner itself goes on.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import traceback
from typing import Any

import numpy as np
import pandas as pd

from tradefleet.sandbox import protocol
from tradefleet.strategy.base import SIGNAL_COLUMNS, Strategy
from tradefleet.strategy.context import Candle, RunLogger
from tradefleet.strategy.params import ParamError

OHLCV = ("open", "high", "low", "close", "volume")
"""``tradefleet.models.candle.OHLCV_COLUMNS``, written out: the sandbox binds only the SDK and the runner's
own modules (``tests/sandbox/test_protocol.py`` checks that the two agree)."""
MAX_ORDERS = 10


class ResultError(ValueError):
    """A ``signals()`` result of the wrong shape; the message is the trader's."""


def _error(exc: BaseException, what: str) -> dict[str, Any]:
    return {"ok": False, "kind": "error", "message": f"{what} raised {type(exc).__name__}: {str(exc)[:500]}"}


def load(path: str, label: str, module_name: str) -> type[Strategy]:
    """Import ``path`` and return its one Strategy subclass, checked. Raises with a message naming ``label``."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {label}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    classes = [obj for obj in vars(module).values()
               if isinstance(obj, type) and issubclass(obj, Strategy) and obj is not Strategy
               and obj.__module__ == module_name]
    if not classes:
        raise TypeError(f"{label} defines no Strategy subclass")
    if len(classes) > 1:
        names = ", ".join(sorted(k.__name__ for k in classes))
        raise TypeError(f"{label} defines {len(classes)} Strategy subclasses ({names}); a file holds exactly one")
    klass = classes[0]
    klass.check_definition()
    return klass


def manifest(klass: type[Strategy]) -> dict[str, Any]:
    defaults = {name: p.default for name, p in klass.parameters().items()}
    try:
        startup: int | None = int(klass(defaults).startup_candles)
    except Exception:  # noqa: BLE001 - reported per run when parameters are checked; the file still loads
        startup = None
    if startup is not None and startup < 0:
        raise ValueError(f"{klass.__name__}.startup_candles must not be negative, got {startup}")

    def fraction(value: Any) -> float | None:
        return None if value is None else float(value)

    return {
        "name": str(klass.name), "class_name": klass.__name__, "description": klass.description(),
        "timeframe": str(klass.timeframe), "params_schema": klass.params_schema(), "startup_candles": startup,
        "stateful": klass.is_stateful(), "has_signals": klass.has_signals(),
        "stoploss": fraction(klass.stoploss), "take_profit": fraction(klass.take_profit),
        "trailing_stop": fraction(klass.trailing_stop), "position_size": float(klass.position_size),
        "interface_version": int(klass.INTERFACE_VERSION),
    }


def frame_from_arrays(arrays: dict[str, np.ndarray]) -> pd.DataFrame:
    """The window as strategies receive it (``market.candles.frame_from_ohlcv``'s shape)."""
    times = np.asarray(arrays["time_ms"], dtype="int64")
    frame = pd.DataFrame({name: np.array(arrays[name], dtype="float64") for name in OHLCV},
                         index=pd.DatetimeIndex(pd.to_datetime(times, unit="ms", utc=True), name="time"))
    frame["time_ms"] = times.copy()
    return frame


def signal_codes(result: Any, candles: pd.DataFrame, name: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Check a ``signals()`` result as :func:`tradefleet.strategy.guard.compute_signals` does and encode its
    two columns as uint8 codes. Raises :class:`ResultError` with the message the trader sees."""
    if not isinstance(result, pd.DataFrame):
        raise ResultError(f"{name}.signals() returned {type(result).__name__}, expected a DataFrame")
    if len(result) != len(candles) or not result.index.equals(candles.index):
        raise ResultError(f"{name}.signals() returned {len(result)} rows for {len(candles)} candles "
                         "(the index must be the candles' index)")
    missing = [c for c in SIGNAL_COLUMNS if c not in result.columns]
    if missing:
        raise ResultError(f"{name}.signals() returned no column {', '.join(missing)}")
    codes, bad = {}, {}
    for column in SIGNAL_COLUMNS:
        values = result[column]
        if isinstance(values, pd.DataFrame):
            raise ResultError(f"{name}.signals() returned more than one {column} column")
        if values.dtype == np.bool_:
            codes[column] = values.to_numpy().astype(np.uint8)
            continue
        out = np.empty(len(values), dtype=np.uint8)
        for i, value in enumerate(values.array):
            if isinstance(value, (bool, np.bool_)):
                out[i] = 1 if value else 0
            elif value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
                out[i] = 2
            elif isinstance(value, (int, np.integer)) and value in (0, 1):
                out[i] = int(value)
            else:
                out[i] = 3
                if column not in bad:
                    bad[column] = repr(value)[:200]
        codes[column] = out
    return codes, bad


class Context:
    """``on_candle``'s ``ctx`` inside the runner: a snapshot of the run, with orders recorded for the parent
    (which applies them to the real account and checks them again). Mirrors
    :class:`tradefleet.strategy.context.CandleContext`."""

    MAX_ORDERS = MAX_ORDERS

    def __init__(self, req: dict[str, Any], window: pd.DataFrame | None, log: RunLogger) -> None:
        self.candle = Candle(*[int(req["candle"][0])] + [float(v) for v in req["candle"][1:]])
        self._window, self._start, self._stop = window, int(req["start"]), int(req["stop"])
        self._frame: pd.DataFrame | None = None
        self.cash = float(req["cash"])
        self.position = float(req["position"])
        self.entry_price = None if req["entry_price"] is None else float(req["entry_price"])
        self._pending = int(req["pending"])
        self.equity = float(req["equity"])
        self.state = req["state"]
        self.log = log
        self.orders: list[list[Any]] = []

    @property
    def candles(self) -> pd.DataFrame:
        if self._frame is None:
            if self._window is None:
                raise RuntimeError("no candle window")
            self._frame = self._window.iloc[self._start:self._stop]
        return self._frame

    @property
    def pending(self) -> int:
        return self._pending

    def _count(self) -> None:
        if len(self.orders) >= self.MAX_ORDERS:
            raise ValueError(f"more than {self.MAX_ORDERS} orders on one candle")

    def buy(self, quote_amount: float) -> None:
        self._count()
        if not quote_amount > 0:
            raise ValueError(f"buy amount must be positive, got {quote_amount}")
        if quote_amount > self.cash * (1 + 1e-9):
            raise ValueError(f"buy of {quote_amount:g} exceeds the cash {self.cash:g}")
        self.orders.append(["buy", float(min(quote_amount, self.cash))])
        self._pending += 1

    def sell(self, amount: float | None = None) -> None:
        self._count()
        if amount is not None and not amount > 0:
            raise ValueError(f"sell amount must be positive, got {amount}")
        self.orders.append(["sell", None if amount is None else float(amount)])
        self._pending += 1


class Runner:
    """Serves one strategy class over a pair of pipe file descriptors."""

    def __init__(self, klass: type[Strategy], fd_in: int, fd_out: int) -> None:
        self.klass = klass
        self.fd_in, self.fd_out = fd_in, fd_out
        self.windows: dict[str, pd.DataFrame] = {}

    def send(self, header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
        try:
            frame = protocol.encode(header, arrays)
        except (TypeError, ValueError, protocol.ProtocolError) as exc:
            frame = protocol.encode({"ok": False, "kind": "error",
                                     "message": f"the strategy produced a value that cannot be sent: {exc}"[:500]})
        protocol.write_frame(self.fd_out, frame)

    def serve(self) -> None:
        while True:
            try:
                req, arrays = protocol.read_frame(self.fd_in)
            except protocol.ProtocolError:
                return  # the parent closed the channel: exit
            op = req.get("op")
            handler = getattr(self, f"op_{op}", None)
            if handler is None:
                self.send({"ok": False, "kind": "error", "message": f"unknown request {op!r}"})
                continue
            handler(req, arrays)

    def instance(self, params: dict[str, Any], logger: RunLogger | None = None) -> Strategy:
        return self.klass(params, logger=logger)

    def op_validate(self, req: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        name = self.klass.name
        try:
            values = self.klass.validate_params(req.get("params"))
        except ParamError as exc:
            self.send({"ok": False, "kind": "param", "field": str(exc.field)[:200], "message": str(exc.message)[:500]})
            return
        except Exception as exc:  # noqa: BLE001 - the strategy's own check_params may raise anything
            self.send(_error(exc, f"{name} parameter check"))
            return
        try:
            startup = int(self.instance(values).startup_candles)
        except Exception as exc:  # noqa: BLE001
            self.send(_error(exc, f"{name}.startup_candles"))
            return
        self.send({"ok": True, "values": values, "startup": startup})

    def op_startup(self, req: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        try:
            self.send({"ok": True, "startup": int(self.instance(req.get("params") or {}).startup_candles)})
        except Exception as exc:  # noqa: BLE001
            self.send(_error(exc, f"{self.klass.name}.startup_candles"))

    def op_signals(self, req: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        window = frame_from_arrays(arrays)
        items, out = [], {}
        for k, item in enumerate(req.get("items") or []):
            logger = RunLogger(self.klass.name)
            try:
                strategy = self.instance(item["params"], logger)
                candles = window.iloc[int(item["start"]):int(item["stop"])]
                result = strategy.signals(candles.copy(deep=False))
                codes, bad = signal_codes(result, candles, strategy.name)
            except ResultError as exc:
                items.append({"ok": False, "kind": "error", "message": str(exc)[:500]})
                continue
            except Exception as exc:  # noqa: BLE001 - the point of the runner
                items.append(_error(exc, f"{self.klass.name}.signals()"))
                continue
            out[f"e{k}"], out[f"x{k}"] = codes["enter_long"], codes["exit_long"]
            items.append({"ok": True, "logs": logger.take(), "bad": bad})
        self.send({"ok": True, "items": items}, out)

    def op_on_candle(self, req: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        token = req.get("window")
        if arrays:
            self.windows = {token: frame_from_arrays(arrays)}  # one window kept: the caller's current one
        window = self.windows.get(token)
        logger = RunLogger(self.klass.name)
        try:
            ctx = Context(req, window, logger)
            strategy = self.instance(req.get("params") or {}, logger)
            strategy.on_candle(ctx)
            state = json.loads(json.dumps(ctx.state, allow_nan=False))
        except Exception as exc:  # noqa: BLE001
            self.send(_error(exc, f"{self.klass.name}.on_candle()"))
            return
        self.send({"ok": True, "orders": ctx.orders, "logs": logger.take(), "state": state})


def main(fd_in: int, fd_out: int, path: str, label: str, module_name: str) -> None:
    """Load the strategy, say ``ready`` with its manifest (or ``load_error``), then serve until EOF."""
    try:
        klass = load(path, label, module_name)
        info = manifest(klass)
    except BaseException as exc:  # noqa: BLE001 - a broken file is reported, not raised
        if isinstance(exc, KeyboardInterrupt):
            raise
        message = "".join(traceback.format_exception_only(type(exc), exc)).strip().replace(path, label)
        protocol.write_frame(fd_out, protocol.encode({"op": "load_error", "message": message[:2000]}))
        return
    protocol.write_frame(fd_out, protocol.encode({"op": "ready", "manifest": info}))
    Runner(klass, fd_in, fd_out).serve()
