"""The ``strategy check`` suite: what a strategy file must pass before it is offered to traders.

:func:`check_strategy` takes a loaded strategy (a :class:`~tradefleet.sandbox.StrategyProxy`, or any
class with the :class:`~tradefleet.strategy.base.Strategy` interface) and runs, in order:

1. ``loads``: the file loaded and declared one strategy class (the proxy exists: loading happened in
   its runner);
2. ``definition``: its name, class, timeframe, description and risk settings;
3. ``parameters``: the defaults pass the strategy's own validation (``validate_params({})``);
4. ``backtest``: a backtest with the default parameters on the given candles (default: the recorded
   BTC/USDT 1h candles of ``data/ohlcv``), through :func:`tradefleet.backtest.run_backtest`;
5. ``lookahead``: the look-ahead check of that backtest (not applicable without ``signals()``).

A failed step stops the steps after it that depend on it (no backtest without valid defaults). Used by
``tradefleet strategy check FILE`` (which prints the report) and by the validation of uploads (which
stores :meth:`CheckReport.to_json`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tradefleet.backtest import BacktestError, BacktestResult, load_csv, run_backtest
from tradefleet.backtest.lookahead import LookaheadReport
from tradefleet.config import REPO_ROOT
from tradefleet.strategy.guard import StrategyError
from tradefleet.strategy.params import ParamError

CHECK_CANDLES = REPO_ROOT / "data" / "ohlcv" / "binance_spot_BTCUSDT_1h_2024-01_2024-09.csv.gz"
"""The candles of the short backtest unless told otherwise (recorded Binance BTC/USDT 1h, Jan-Sep 2024;
``data/ohlcv/SOURCES.md``)."""

STEPS = ("loads", "definition", "parameters", "backtest", "lookahead")

_candles_cache: dict[Path, pd.DataFrame] = {}


def default_candles() -> pd.DataFrame:
    """:data:`CHECK_CANDLES` loaded with :func:`~tradefleet.backtest.load_csv`, once per process."""
    if CHECK_CANDLES not in _candles_cache:
        _candles_cache[CHECK_CANDLES] = load_csv(CHECK_CANDLES)
    return _candles_cache[CHECK_CANDLES]


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


@dataclass
class CheckStep:
    """One step of the report: ``name`` (one of :data:`STEPS`, or a caller's own), ``ok``, and a
    ``message`` for the author (one line)."""

    name: str
    ok: bool
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "message": self.message}


@dataclass
class CheckReport:
    """The steps in order, and what the CLI prints besides: the backtest ``result`` (None when it did
    not run) and ``params`` (the validated defaults)."""

    steps: list[CheckStep] = field(default_factory=list)
    result: BacktestResult | None = None
    params: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """Every step passed (and there is at least one)."""
        return bool(self.steps) and all(step.ok for step in self.steps)

    def step(self, name: str) -> CheckStep | None:
        return next((s for s in self.steps if s.name == name), None)

    def add(self, name: str, ok: bool, message: str) -> CheckStep:
        step = CheckStep(name=name, ok=ok, message=_one_line(message))
        self.steps.append(step)
        return step

    def to_json(self) -> dict[str, Any]:
        """``{"ok": bool, "steps": [{"name", "ok", "message"}, ...]}``: what an upload's report stores."""
        return {"ok": self.ok, "steps": [s.to_json() for s in self.steps]}


def describe_params(schema: dict[str, Any]) -> list[str]:
    """One line per parameter of a JSON schema object: ``name: type = default (bounds)  help``."""
    lines = []
    for name, prop in (schema.get("properties") or {}).items():
        extra = ", ".join(f"{k} {v}" for k, v in prop.items() if k not in ("type", "default", "description"))
        lines.append(f"{name}: {prop.get('type')} = {prop.get('default')!r}" + (f" ({extra})" if extra else "")
                     + (f"  {prop['description']}" if prop.get("description") else ""))
    return lines


def check_strategy(strategy: Any, *, candles: pd.DataFrame | None = None, stake: float = 10_000.0,
                   fee: float = 0.001, timeout_s: float | None = None) -> CheckReport:
    """Run the check suite (module docstring) on ``strategy``, a loaded strategy class or proxy.

    ``candles``: as :func:`~tradefleet.backtest.load_csv` returns them (default :func:`default_candles`);
    ``stake`` (quote) and ``fee`` (taker rate) of the backtest. ``timeout_s``: a budget for the whole
    suite; a step that would start after it is spent fails with that reason (each call into strategy
    code is bounded on its own by the sandbox). Never raises for the strategy's faults: they are
    failed steps.
    """
    started = time.monotonic()
    report = CheckReport()

    def out_of_time(step: str) -> bool:
        if timeout_s is not None and time.monotonic() - started > timeout_s:
            report.add(step, False, f"not run: the check took longer than its budget of {timeout_s:g} s")
            return True
        return False

    label = getattr(strategy, "label", None) or getattr(strategy, "__name__", "strategy")
    class_name = getattr(getattr(strategy, "manifest", None), "class_name", None) or getattr(
        strategy, "__name__", "?")
    report.add("loads", True, f"{label} loads and declares the strategy class {class_name}")

    try:
        name, timeframe = strategy.name, strategy.timeframe
        description = strategy.description()
        risk = ", ".join(f"{key} {value:g}" for key in ("stoploss", "take_profit", "trailing_stop")
                         if (value := getattr(strategy, key, None)) is not None)
        hooks = [h for h, has in (("signals()", strategy.has_signals()), ("on_candle()", strategy.is_stateful()))
                 if has]
    except (StrategyError, AttributeError, TypeError) as exc:
        report.add("definition", False, f"the strategy's definition cannot be read: {exc}")
        return report
    report.add("definition", True,
               f"{name} ({class_name}), timeframe {timeframe}, hooks {' and '.join(hooks) or 'none'}, "
               f"position size {strategy.position_size:g}" + (f", {risk}" if risk else "")
               + ("" if description else "; no description: write a class docstring"))

    schema = strategy.params_schema()
    properties = schema.get("properties") or {}
    try:
        report.params = strategy.validate_params({})
    except ParamError as exc:
        report.add("parameters", False, f"the default of {exc.field} is invalid: {exc.message}")
        return report
    except StrategyError as exc:
        report.add("parameters", False, f"the parameter check failed: {exc}")
        return report
    report.add("parameters", True, (f"{len(properties)} parameter(s), defaults valid: "
                                    + ", ".join(f"{k}={v!r}" for k, v in report.params.items()))
               if properties else "no parameters")

    if out_of_time("backtest"):
        return report
    data = default_candles() if candles is None else candles
    try:
        result = run_backtest(strategy, data, params={}, stake=stake, fee=fee, lookahead=strategy.has_signals())
    except (BacktestError, ParamError, StrategyError) as exc:
        report.add("backtest", False, f"backtest with the default parameters: {exc}")
        return report
    report.result = result
    summary = result.to_dict()
    metrics = result.metrics
    report.add("backtest", True,
               f"{len(result.equity)} candles, {summary['start']} to {summary['end']}: {metrics['trades']} trades, "
               f"total return {metrics.get('total_return_pct', 0.0):.2f} %, "
               f"max drawdown {metrics.get('max_drawdown_pct', 0.0):.2f} %")

    look: LookaheadReport | None = result.lookahead
    if look is None:
        report.add("lookahead", True, "not applicable (no signals(); on_candle sees only closed candles)")
    elif look.flagged:
        first = "; ".join(f"{when} {column}: {full} with the full history, {cut} without the future"
                          for when, column, full, cut in look.mismatches[:3])
        report.add("lookahead", False, f"{len(look.mismatches)} sampled signals change when the future is cut "
                                       f"off (the strategy reads candles after the one it decides on): {first}")
    else:
        report.add("lookahead", True, f"passed ({len(look.checked)} sampled candles)")
    return report


__all__ = ["CHECK_CANDLES", "CheckReport", "CheckStep", "STEPS", "check_strategy", "default_candles",
           "describe_params"]
