"""The backtest engine: a strategy over stored candles, with the paper/live fill model.

Fill model
==========

The same rules as the fleet engine's paper runs (``engine/evaluate.py`` with
``execution/paper.PaperBroker``), so a backtest, a paper run and the simulator agree trade for trade.
Orders decided on a candle's close fill at the **next candle's open**: backtesting.py's default
``trade_on_close=False`` (the decision uses the close; the next price available after it is the next
open). Long only, one position at a time.

Inputs: candles (UTC ``DatetimeIndex``, float ``open, high, low, close, volume``); the signals
``enter_long`` / ``exit_long`` of :func:`tradefleet.strategy.guard.compute_signals` called **once**
over the whole history (rows before ``startup_candles`` are no signal; NaN or a non-boolean in a
later row is an error); stake (quote); fee (taker rate, fraction, charged in quote on each fill's
cost); amount step (base; ``None`` = no rounding); minimum cost and amount (optional). For each
candle ``i`` in order:

1. **Pending order** (decided at candle ``i-1``'s close) fills at ``open[i]``.
   Buy: ``budget = cash * position_size`` (decided at the signal candle);
   ``amount = floor_to_step(budget / (open * (1 + fee)), step)``; ``cost = amount * open``,
   ``fee = cost * fee_rate``, ``cash -= cost + fee``. Rejected (no position, no trade) when the
   amount is 0, below the minimum amount, or ``amount * open`` is below the minimum cost.
   Sell: the whole position; ``cash += cost - fee``.
2. **Protective exits** on candle ``i`` for a position held during it (including one entered at
   ``open[i]``), entry price ``E``:
   stop ``S = max(E * (1 + stoploss), HWM * (1 - trailing_stop))`` (each term only if set), where
   ``HWM = max(E, highs of the candles strictly before i since the entry)``: known at candle ``i``'s
   open, so no intrabar look-ahead; ``HWM`` takes ``high[i]`` after the check. Take-profit target
   ``T = E * (1 + take_profit)``. In this order: ``open[i] <= S`` → exit at ``open[i]`` (a gap
   through the stop fills at the first price); ``open[i] >= T`` → exit at ``open[i]``;
   ``low[i] <= S`` → exit at ``S``; ``high[i] >= T`` → exit at ``T``. When the stop and the target
   both lie inside one candle the stop wins (the order of the ticks inside a candle is unknown:
   pessimistic). Reason ``stoploss``, or ``trailing_stop`` when the trailing level is the binding
   one (strictly above the fixed stop), or ``take_profit``. Fee as a sell.
3. **Signals** at candle ``i``'s close, when no order is pending: in a position and
   ``exit_long[i]`` → a pending sell (reason ``exit_long``); flat and ``enter_long[i]`` and not
   ``exit_long[i]`` → a pending buy. A position closed in step 2 may be re-entered here, on the same
   candle. A decision on the last candle never fills.
4. **Equity** ``[i] = cash + position * close[i]``.

At the end an open position stays open: listed as an open trade (``is_open``, no exit) and valued
at the last close in the equity curve and the metrics. A closed trade's
``pnl = amount * (exit - entry) - entry_fee - exit_fee`` and
``pnl_pct = pnl / (amount * entry + entry_fee) * 100`` (:mod:`tradefleet.execution.ledger`, the formulas
paper and live trades use); times are the fill candles' open times.

The two cores: :func:`~tradefleet.backtest.vector.simulate` (signal strategies, event-driven numpy)
and :func:`~tradefleet.backtest.stepped.simulate_stateful` (strategies with ``on_candle``); both give
a :class:`~tradefleet.backtest.results.Simulation`, turned here into a
:class:`~tradefleet.backtest.results.BacktestResult`.
"""

from __future__ import annotations

import math
from datetime import datetime
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from tradefleet.backtest.csvdata import check_candles
from tradefleet.backtest.errors import BacktestError
from tradefleet.backtest.lookahead import check_lookahead
from tradefleet.backtest.metrics import compute_metrics
from tradefleet.backtest.results import BacktestResult, open_trade_dict, trade_dicts
from tradefleet.backtest.stepped import simulate_stateful
from tradefleet.backtest.vector import simulate
from tradefleet.execution.paper import MarketRules
from tradefleet.strategy.base import SIGNAL_COLUMNS, Strategy
from tradefleet.strategy.guard import StrategyError, call_guarded, compute_signals, signal_bool, signal_problem
from tradefleet.times import TimeValueError, iso_ms, parse_time_ms, timeframe_name, timeframe_seconds

DEFAULT_TIMEOUT_S = 120.0
"""Time allowed for one ``signals()`` call over the whole history (a live tick gets
``STRATEGY_TIMEOUT_S`` for a short window)."""


def _timeframe_seconds(timeframe: str) -> int:
    try:
        return timeframe_seconds(timeframe)
    except TimeValueError as exc:
        raise BacktestError(str(exc)) from exc


def _time_ms(value: str | datetime | pd.Timestamp | int | None, what: str) -> int | None:
    try:
        return parse_time_ms(value, what)
    except TimeValueError as exc:
        raise BacktestError(str(exc)) from exc


def _bool_or_error(values: Any, start: int, index: pd.Index, name: str, column: str) -> tuple[np.ndarray, int, str]:
    """A signal column as a bool array (rows before ``start`` False), and the first bad row with its
    message (``len`` and ``""`` when none): :func:`~tradefleet.strategy.guard.signal_bool` and
    :func:`~tradefleet.strategy.guard.signal_problem`, the rules of the live engine's reader."""
    n = len(index)
    out = np.zeros(n, dtype=bool)
    if values.dtype == np.bool_:
        out[start:] = values.to_numpy()[start:]
        return out, n, ""
    array = values.array
    for row in range(start, n):
        read = signal_bool(array[row])
        if read is None:
            return out, row, signal_problem(name, column, index[row], array[row])
        out[row] = read
    return out, n, ""


def signal_arrays(result: pd.DataFrame, startup: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``enter_long`` and ``exit_long`` of a ``compute_signals`` result as bool arrays, rows before
    ``startup`` False. Raises :class:`BacktestError` for the first row (in time order, ``enter_long``
    first) holding NaN or a non-boolean, naming the column and the candle time."""
    arrays, bad = [], []
    for column in SIGNAL_COLUMNS:
        values = result[column]
        if isinstance(values, pd.DataFrame):
            raise BacktestError(f"{name}.signals() returned more than one {column} column")
        array, row, message = _bool_or_error(values, startup, result.index, name, column)
        arrays.append(array)
        bad.append((row, message))
    row, message = min(bad, key=lambda item: item[0])
    if message:
        raise BacktestError(message)
    return arrays[0], arrays[1]



# ---------------------------------------------------------------------------------------- the API
def _protective_settings(strategy: Strategy) -> tuple[float | None, float | None, float | None]:
    stoploss = getattr(strategy, "stoploss", None)
    take_profit = getattr(strategy, "take_profit", None)
    trailing_stop = getattr(strategy, "trailing_stop", None)
    if stoploss is not None and not -1 < stoploss < 0:
        raise BacktestError(f"{strategy.name}.stoploss must be a negative fraction above -1, got {stoploss}")
    if take_profit is not None and not take_profit > 0:
        raise BacktestError(f"{strategy.name}.take_profit must be a positive fraction, got {take_profit}")
    if trailing_stop is not None and not 0 < trailing_stop < 1:
        raise BacktestError(f"{strategy.name}.trailing_stop must be a fraction in (0, 1), got {trailing_stop}")
    return stoploss, take_profit, trailing_stop


def run_backtest(strategy_cls: type[Strategy], candles: pd.DataFrame, *, params: dict[str, Any] | None = None,
                 stake: float = 10_000.0, fee: float = 0.001, amount_step: float | None = None,
                 min_cost: float | None = None, min_amount: float | None = None, timeframe: str | None = None,
                 start: str | datetime | int | None = None, end: str | datetime | int | None = None,
                 lookahead: bool = False, lookahead_samples: int = 20,
                 timeout_s: float = DEFAULT_TIMEOUT_S,
                 progress: Callable[[float], None] | None = None) -> BacktestResult:
    """Backtest ``strategy_cls`` over ``candles`` with the fill model of the module docstring.

    ``candles``: DataFrame indexed by candle open time (UTC ``DatetimeIndex``, ascending, unique),
    float columns ``open, high, low, close, volume`` (as :func:`~tradefleet.backtest.csvdata.load_csv`
    returns). ``params``: raw strategy parameters, validated with ``Strategy.validate_params``
    (raises :class:`~tradefleet.strategy.params.ParamError` naming the parameter). ``stake`` (quote),
    ``fee`` (taker rate), ``amount_step`` / ``min_amount`` (base), ``min_cost`` (quote): the market's
    rules. ``timeframe``: ccxt notation, checked against the candles' spacing (default: inferred
    from it); used to annualise Sharpe and Sortino. ``start`` (inclusive) / ``end`` (exclusive): ISO
    8601 (UTC when no zone), datetime or epoch ms; candles before ``start`` still serve as the
    strategy's startup period when there are any. ``lookahead``: also run
    :func:`~tradefleet.backtest.lookahead.check_lookahead` with ``lookahead_samples`` samples.
    ``progress``: called with the simulated fraction (0..1) at the start, during a stateful
    strategy's per-candle loop and at the end.

    Strategies with only ``signals()`` run on the vectorised engine (:func:`simulate`); strategies
    with the stateful ``on_candle`` hook are stepped candle by candle through the same
    :class:`~tradefleet.execution.account.CandleAccount` as paper runs (:func:`simulate_stateful`).

    Raises :class:`BacktestError` (before anything is computed, or when the strategy fails) for bad
    candles, a bad or empty date range, too few candles for the strategy's startup period, a bad
    timeframe, and a strategy that raises, times out, returns the wrong shape or NaN signals.
    """
    check_candles(candles)
    if not len(candles):
        raise BacktestError("no candles")
    if not (stake > 0 and math.isfinite(stake)):
        raise BacktestError(f"stake must be a positive amount, got {stake}")
    if not 0 <= fee < 1:
        raise BacktestError(f"fee must be a fraction in [0, 1), got {fee}")
    if amount_step is not None and not amount_step > 0:
        raise BacktestError(f"amount step must be positive, got {amount_step}")
    if "time_ms" not in candles.columns:
        candles = candles.assign(time_ms=candles.index.as_unit("ms").asi8)
    times = candles.index.as_unit("ms").asi8

    # The candles' spacing (median, robust to gaps) and the timeframe.
    spacing_s = int(np.median(np.diff(times)) // 1000) if len(times) > 1 else None
    if timeframe is not None:
        tf_s = _timeframe_seconds(timeframe)
        if spacing_s is not None and spacing_s != tf_s:
            raise BacktestError(f"timeframe {timeframe} does not match the candles, which are "
                                f"{timeframe_name(spacing_s)} apart")
    elif spacing_s:
        tf_s, timeframe = spacing_s, timeframe_name(spacing_s)
    else:
        raise BacktestError("one candle only: give more candles (or at least the timeframe)")
    tf_ms = tf_s * 1000

    # The date range.
    start_ms, end_ms = _time_ms(start, "start"), _time_ms(end, "end")
    first_ms, last_ms = int(times[0]), int(times[-1])
    span = f"the candles run from {iso_ms(first_ms)} to {iso_ms(last_ms)}"
    if start_ms is not None and end_ms is not None and start_ms >= end_ms:
        raise BacktestError(f"empty date range: start {iso_ms(start_ms)} is not before end {iso_ms(end_ms)}")
    if start_ms is not None and not first_ms <= start_ms <= last_ms:
        raise BacktestError(f"start {iso_ms(start_ms)} is outside the data: {span}")
    if end_ms is not None and not first_ms < end_ms <= last_ms + tf_ms:
        raise BacktestError(f"end {iso_ms(end_ms)} is outside the data: {span}")
    lo = int(np.searchsorted(times, start_ms, side="left")) if start_ms is not None else 0
    hi = int(np.searchsorted(times, end_ms, side="left")) if end_ms is not None else len(times)
    if hi <= lo:
        raise BacktestError(f"no candles between {iso_ms(start_ms)} and {iso_ms(end_ms)}")

    validated = strategy_cls.validate_params(params)
    strategy = strategy_cls(validated)
    try:
        startup = int(call_guarded(lambda: strategy.startup_candles, timeout_s=timeout_s,
                                   what=f"{strategy.name}.startup_candles"))
    except StrategyError as exc:
        raise BacktestError(str(exc)) from exc
    stoploss, take_profit, trailing_stop = _protective_settings(strategy)
    position_size = float(getattr(strategy, "position_size", 1.0))
    if not 0 < position_size <= 1:
        raise BacktestError(f"{strategy.name}.position_size must be in (0, 1], got {position_size}")

    warm = max(0, lo - startup)
    frame = candles.iloc[warm:hi]
    offset = lo - warm
    if len(frame) < startup + 2:
        raise BacktestError(
            f"too few candles: {strategy.name} needs {startup} startup candles plus two (a signal and its fill), "
            f"got {len(frame)} from {iso_ms(int(times[warm]))} to {iso_ms(int(times[hi - 1]))}")

    if progress is not None:
        progress(0.0)
    if strategy_cls.has_signals():
        try:
            result = compute_signals(strategy, frame, timeout_s=timeout_s)
        except StrategyError as exc:
            raise BacktestError(str(exc)) from exc
        enter, exit_ = signal_arrays(result, startup, strategy.name)
    else:
        enter = exit_ = np.zeros(len(frame), dtype=bool)
    enter, exit_ = enter[offset:], exit_[offset:]
    tested = frame.iloc[offset:]

    if strategy_cls.is_stateful():
        sim = simulate_stateful(strategy_cls, validated, frame, offset, enter, exit_, stake=float(stake),
                                rules=MarketRules(taker=float(fee), amount_step=amount_step, min_amount=min_amount,
                                                  min_cost=min_cost),
                                stoploss=stoploss, take_profit=take_profit, trailing_stop=trailing_stop,
                                position_size=position_size, timeout_s=timeout_s, progress=progress)
    else:
        sim = simulate(tested["open"].to_numpy(), tested["high"].to_numpy(), tested["low"].to_numpy(),
                       tested["close"].to_numpy(), enter, exit_, stake=float(stake), fee=float(fee),
                       amount_step=amount_step, min_cost=min_cost, min_amount=min_amount,
                       position_size=position_size, stoploss=stoploss, take_profit=take_profit,
                       trailing_stop=trailing_stop)
    if progress is not None:
        progress(1.0)
    time_ms = times[lo:hi]
    trades = trade_dicts(time_ms, sim.trades)
    closed = list(trades)
    if sim.open_trade is not None:
        trades.append(open_trade_dict(time_ms, sim.open_trade, float(tested["close"].iat[-1])))
    metrics = compute_metrics(stake=float(stake), equity=sim.equity, time_ms=time_ms, timeframe_s=tf_s,
                              closed=closed, position=sim.position, fees_paid=sim.fees_paid)
    report = None
    if lookahead:
        report = check_lookahead(strategy_cls, frame, validated, samples=lookahead_samples, timeout_s=timeout_s)
    return BacktestResult(
        strategy=strategy.name, params=validated, timeframe=timeframe, start_ms=int(time_ms[0]),
        end_ms=int(time_ms[-1]) + tf_ms, stake=float(stake), fee=float(fee), metrics=metrics, trades=trades,
        equity_time_ms=np.asarray(time_ms, dtype="int64"), equity=sim.equity,
        signals={"enter_long": int(enter.sum()), "exit_long": int(exit_.sum())}, lookahead=report,
        settings={"amount_step": amount_step, "min_cost": min_cost, "min_amount": min_amount,
                  "position_size": position_size, "stoploss": stoploss, "take_profit": take_profit,
                  "trailing_stop": trailing_stop, "startup_candles": startup},
    )

