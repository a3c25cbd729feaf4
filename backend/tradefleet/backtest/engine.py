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

Implementation
==============

Event-driven with numpy, not a loop over every candle: :func:`simulate` jumps from one entry
signal to the fill, finds the next exit signal with a binary search, and scans only the candles in
between (vectorised, in growing chunks) for a protective exit: ``np.maximum.accumulate`` gives the
trailing high-water mark, the first ``True`` of the trigger mask the exit candle. The equity curve
is built from the few points where cash or position change. Every price is computed with the same
floating-point operations as the rules above (and as ``PaperBroker``), so the result equals a plain
per-candle loop bit for bit (``tests/backtest`` checks this on random signals and settings).
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import UTC, datetime
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from tradefleet.backtest.csvdata import check_candles
from tradefleet.backtest.errors import BacktestError
from tradefleet.backtest.lookahead import LookaheadReport, check_lookahead
from tradefleet.backtest.metrics import compute_metrics
from tradefleet.execution.account import PaperAccount
from tradefleet.execution.ledger import round_trip_pnl, round_trip_pnl_pct, unrealised_pnl
from tradefleet.execution.paper import MarketRules, Wallet, floor_to_step
from tradefleet.strategy.context import Candle, CandleContext, CandleWindow, check_state
from tradefleet.strategy.base import SIGNAL_COLUMNS, Strategy
from tradefleet.strategy.guard import StrategyError, call_guarded, compute_signals

DEFAULT_TIMEOUT_S = 120.0
"""Time allowed for one ``signals()`` call over the whole history (a live tick gets
``STRATEGY_TIMEOUT_S`` for a short window)."""

_FIRST_CHUNK = 32
"""Candles scanned at once for a protective exit; each further chunk is 4 times longer."""


# ---------------------------------------------------------------------------------------- results
@dataclass
class Simulation:
    """The raw outcome of :func:`simulate` on arrays.

    ``trades``: tuples ``(entry_row, entry_price, amount, entry_fee, exit_row, exit_price, exit_fee,
    exit_reason)``, closed trades in order; ``open_trade``: ``(entry_row, entry_price, amount,
    entry_fee)`` or ``None``; ``equity``, ``cash``, ``position``: per candle at its close.
    """

    trades: list[tuple[int, float, float, float, int, float, float, str]]
    open_trade: tuple[int, float, float, float] | None
    equity: np.ndarray
    cash: np.ndarray
    position: np.ndarray
    fees_paid: float


@dataclass
class BacktestResult:
    """One backtest's outcome.

    ``metrics``: see :mod:`tradefleet.backtest.metrics`; ``trades``: dicts with ``entry_time`` /
    ``exit_time`` (ISO 8601 UTC) and ``*_time_ms`` (epoch ms, the fill candles' open times),
    ``entry_price``, ``exit_price`` (quote), ``amount`` (base), ``entry_fee``, ``exit_fee``, ``fees``,
    ``pnl`` (quote), ``pnl_pct``, ``exit_reason`` (``exit_long``, ``stoploss``, ``trailing_stop``,
    ``take_profit``; ``None`` while open), ``is_open`` (an open trade has no exit; its ``pnl`` is
    unrealised at the last close, entry fee deducted); ``equity_time_ms`` / ``equity``: per-candle
    equity at each close; ``signals``: how many candles of the tested range carried each signal;
    ``lookahead``: the look-ahead check when it ran.
    """

    strategy: str
    params: dict[str, Any]
    timeframe: str
    start_ms: int
    end_ms: int
    stake: float
    fee: float
    metrics: dict[str, Any]
    trades: list[dict[str, Any]]
    equity_time_ms: np.ndarray
    equity: np.ndarray
    signals: dict[str, int]
    lookahead: LookaheadReport | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, *, equity: bool = False) -> dict[str, Any]:
        """A JSON-safe dict: ``metrics``, ``trades``, ``lookahead`` (``None`` when not checked) and
        the run's settings; with ``equity``, also ``equity`` as ``[[time_ms, equity], ...]``."""
        out: dict[str, Any] = {
            "strategy": self.strategy,
            "params": self.params,
            "timeframe": self.timeframe,
            "start": iso_ms(self.start_ms),
            "end": iso_ms(self.end_ms),
            "stake": self.stake,
            "fee": self.fee,
            **self.settings,
            "signals": self.signals,
            "metrics": self.metrics,
            "trades": self.trades,
            "lookahead": self.lookahead.to_dict() if self.lookahead is not None else None,
        }
        if equity:
            out["equity"] = [[int(t), float(v)] for t, v in zip(self.equity_time_ms, self.equity)]
        return out


# ---------------------------------------------------------------------------------------- helpers
def iso_ms(ms: int | None) -> str | None:
    """Epoch milliseconds → ISO 8601 UTC (``2024-01-01T00:05:00Z``)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


_TIMEFRAME = re.compile(r"^([1-9][0-9]*)([smhdwM])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800, "M": 2_592_000}


def timeframe_seconds(timeframe: str) -> int:
    """A ccxt timeframe (``"5m"``, ``"1h"``, ``"1d"``) in seconds. Raises :class:`BacktestError`."""
    match = _TIMEFRAME.match(str(timeframe).strip())
    if not match:
        raise BacktestError(f"unknown timeframe {timeframe!r} (use ccxt notation: 1m, 5m, 1h, 1d...)")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def timeframe_name(seconds: int) -> str:
    """Seconds → the shortest ccxt timeframe name (``300`` → ``"5m"``)."""
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNIT_S[unit] == 0:
            return f"{seconds // _UNIT_S[unit]}{unit}"
    return f"{seconds}s"


def to_ms(value: str | datetime | pd.Timestamp | int | None, what: str) -> int | None:
    """An ISO 8601 time (no zone = UTC), a datetime, or epoch ms → epoch ms. Raises :class:`BacktestError`."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise BacktestError(f"{what}: cannot read {value!r} as a time (use ISO 8601, e.g. 2024-03-01T00:00Z)") \
            from None
    if stamp is pd.NaT:
        raise BacktestError(f"{what}: {value!r} is not a time")
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return int(stamp.tz_convert("UTC").value // 1_000_000)


def _bool_or_error(values: Any, start: int, index: pd.Index, name: str, column: str) -> tuple[np.ndarray, int, str]:
    """A signal column as a bool array (rows before ``start`` False), and the first bad row with its
    message (``len`` and ``""`` when none). The same acceptance rules as the live engine's reader:
    booleans, and integers 0 and 1; NaN/None/NA and anything else is an error."""
    n = len(index)
    out = np.zeros(n, dtype=bool)
    if values.dtype == np.bool_:
        out[start:] = values.to_numpy()[start:]
        return out, n, ""
    array = values.array
    for row in range(start, n):
        value = array[row]
        if isinstance(value, (bool, np.bool_)):
            out[row] = bool(value)
            continue
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            return out, row, f"{name}.signals() gave NaN in {column} at {index[row]}"
        if isinstance(value, (int, np.integer)) and value in (0, 1):
            out[row] = bool(value)
            continue
        shown = value.item() if isinstance(value, np.generic) else value
        return out, row, f"{name}.signals() gave {shown!r} in {column} at {index[row]}, expected a boolean"
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


# ---------------------------------------------------------------------------------------- the core
def _protective_exit(o: np.ndarray, h: np.ndarray, low: np.ndarray, first: int, last: int, entry: float,
                     stoploss: float | None, take_profit: float | None,
                     trailing_stop: float | None) -> tuple[int, float, str] | None:
    """The first candle in ``first..last`` (inclusive) where step 2 of the fill model exits, with
    the exit price and reason, or ``None``. Scans in chunks (32, 128, 512... candles)."""
    fixed = entry * (1.0 + stoploss) if stoploss else None
    target = entry * (1.0 + take_profit) if take_profit else None
    factor = 1.0 - trailing_stop if trailing_stop else None
    hwm = entry
    start, size = first, _FIRST_CHUNK
    while start <= last:
        stop_at = min(last + 1, start + size)
        oo = o[start:stop_at]
        trail = None
        if factor is not None:
            hh = h[start:stop_at]
            before = np.empty(len(hh))
            before[0] = hwm
            if len(hh) > 1:
                np.maximum.accumulate(hh[:-1], out=before[1:])
                np.maximum(before[1:], hwm, out=before[1:])
            trail = before * factor
            stop = trail if fixed is None else np.maximum(trail, fixed)
        else:
            stop = fixed
        if stop is not None:
            hit = (oo <= stop) | (low[start:stop_at] <= stop)
            if target is not None:
                hit |= (oo >= target) | (h[start:stop_at] >= target)
        else:
            hit = (oo >= target) | (h[start:stop_at] >= target)
        if hit.any():
            k = int(hit.argmax())
            i = start + k
            price_open = float(o[i])
            if stop is not None:
                level = float(stop[k]) if trail is not None else stop
                reason = "stoploss"
                if trail is not None and (fixed is None or float(trail[k]) > fixed):
                    reason = "trailing_stop"
                if price_open <= level:
                    return i, price_open, reason
            if target is not None and price_open >= target:
                return i, price_open, "take_profit"
            if stop is not None and float(low[i]) <= level:
                return i, level, reason
            return i, target, "take_profit"
        if factor is not None:
            hwm = max(hwm, float(hh.max()))
        start, size = stop_at, size * 4
    return None


def simulate(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, enter: np.ndarray,
             exit_: np.ndarray, *, stake: float, fee: float, amount_step: float | None = None,
             min_cost: float | None = None, min_amount: float | None = None, position_size: float = 1.0,
             stoploss: float | None = None, take_profit: float | None = None,
             trailing_stop: float | None = None) -> Simulation:
    """Run the fill model (module docstring) over price arrays and boolean signal arrays of equal
    length (rows that must not act already False). Pure; no validation."""
    n = len(open_)
    o = np.asarray(open_, dtype="float64")
    h = np.asarray(high, dtype="float64")
    lo = np.asarray(low, dtype="float64")
    c = np.asarray(close, dtype="float64")
    enter = np.asarray(enter, dtype=bool)
    exit_ = np.asarray(exit_, dtype=bool)
    entries = np.flatnonzero(enter & ~exit_).tolist()
    exits = np.flatnonzero(exit_).tolist()
    n_entries, n_exits = len(entries), len(exits)
    protective = bool(stoploss or take_profit or trailing_stop)

    cash = float(stake)
    fees = 0.0
    changes: list[tuple[int, float, float]] = []  # (row, cash after, position after)
    trades: list[tuple[int, float, float, float, int, float, float, str]] = []
    open_trade = None
    j = 0  # the first candle whose close may decide an entry
    while True:
        p = bisect_left(entries, j)
        if p == n_entries:
            break
        e = entries[p] + 1
        if e >= n:
            break
        price = float(o[e])
        budget = cash * position_size or cash  # the broker: ``order.quote_amount or wallet.cash``
        amount = floor_to_step(min(budget, cash) / (price * (1.0 + fee)), amount_step)
        if amount <= 0 or (min_amount and amount < min_amount) or (min_cost and amount * price < min_cost):
            j = e  # rejected: flat again, this candle's close may decide anew
            continue
        cost = amount * price
        entry_fee = cost * fee
        cash -= cost + entry_fee
        fees += entry_fee
        changes.append((e, cash, amount))
        q = bisect_left(exits, e)
        x = exits[q] if q < n_exits else n
        hit = _protective_exit(o, h, lo, e, min(x, n - 1), price, stoploss, take_profit, trailing_stop) \
            if protective else None
        if hit is not None:
            i, exit_price, reason = hit
        elif x + 1 < n:
            i, exit_price, reason = x + 1, float(o[x + 1]), "exit_long"
        else:
            open_trade = (e, price, amount, entry_fee)
            break
        cost = amount * exit_price
        exit_fee = cost * fee
        cash += cost - exit_fee
        fees += exit_fee
        changes.append((i, cash, 0.0))
        trades.append((e, price, amount, entry_fee, i, exit_price, exit_fee, reason))
        j = i

    cash_arr = np.full(n, float(stake))
    pos_arr = np.zeros(n)
    if changes:
        rows = np.array([ch[0] for ch in changes])
        where = np.searchsorted(rows, np.arange(n), side="right") - 1
        held = where >= 0
        cash_arr[held] = np.array([ch[1] for ch in changes])[where[held]]
        pos_arr[held] = np.array([ch[2] for ch in changes])[where[held]]
    equity = cash_arr + pos_arr * c
    return Simulation(trades=trades, open_trade=open_trade, equity=equity, cash=cash_arr, position=pos_arr,
                      fees_paid=fees)


def simulate_stateful(strategy_cls: type[Strategy], params: dict[str, Any], frame: pd.DataFrame, offset: int,
                      enter: np.ndarray, exit_: np.ndarray, *, stake: float, rules: MarketRules,
                      stoploss: float | None, take_profit: float | None, trailing_stop: float | None,
                      position_size: float, timeout_s: float,
                      progress: Callable[[float], None] | None = None) -> Simulation:
    """Step a :class:`PaperAccount` over ``frame[offset:]`` candle by candle, calling the strategy's
    ``on_candle`` after each candle's fills, protective exits and signal decision, exactly as the
    fleet engine does for a paper run. ``frame[:offset]`` is the startup window; ``enter``/``exit_``
    are the tested candles' signals. Raises :class:`BacktestError` when the hook raises or leaves a
    state that is not JSON."""
    import logging

    times = frame["time_ms"].to_numpy()
    o, h, low, c, v = (frame[col].to_numpy() for col in ("open", "high", "low", "close", "volume"))
    n = len(frame) - offset
    account = PaperAccount(rules, wallet=Wallet(cash=stake), stoploss=stoploss, take_profit=take_profit,
                           trailing_stop=trailing_stop)
    strategy = strategy_cls(params, logger=logging.getLogger(f"tradefleet.backtest.{strategy_cls.name}"))
    state: dict[str, Any] = {}
    equity, cash, position = np.empty(n), np.empty(n), np.empty(n)
    row_of = {int(t): k for k, t in enumerate(times[offset:])}
    trades: list[tuple[int, float, float, float, int, float, float, str]] = []
    step = max(1, n // 100)
    for k in range(n):
        i = offset + k
        t = int(times[i])
        account.open_candle(t, float(o[i]))
        account.protect(t, float(o[i]), float(h[i]), float(low[i]))
        account.close_candle(t, float(c[i]), enter=bool(enter[k]), exit_=bool(exit_[k]), size=position_size)
        ctx = CandleContext(account=account, candle=Candle(t, float(o[i]), float(h[i]), float(low[i]), float(c[i]),
                                                           float(v[i])),
                            candles=CandleWindow(frame, 0, i + 1), state=state, log=strategy.logger)
        try:
            call_guarded(strategy.on_candle, ctx, timeout_s=timeout_s, what=f"{strategy.name}.on_candle()")
            check_state(state)
        except (StrategyError, ValueError) as exc:
            raise BacktestError(f"{exc} (candle {iso_ms(t)})") from None
        for closed in account.take_events().closed:
            p = closed.round_trip
            trades.append((row_of[p.entry_time_ms], p.entry_price, p.bought, p.entry_fee,
                           row_of[closed.exit_time_ms], closed.exit_price, p.exit_fee, closed.reason))
        equity[k] = account.equity(float(c[i]))
        cash[k], position[k] = account.wallet.cash, account.wallet.position_amount
        if progress is not None and k % step == 0:
            progress(k / n)
    p = account.position
    open_trade = (row_of[p.entry_time_ms], p.entry_price, p.amount, p.entry_fee) if p is not None else None
    return Simulation(trades=trades, open_trade=open_trade, equity=equity, cash=cash, position=position,
                      fees_paid=account.wallet.fees_paid)


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
    :class:`~tradefleet.execution.account.PaperAccount` as paper runs (:func:`simulate_stateful`).

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
        tf_s = timeframe_seconds(timeframe)
        if spacing_s is not None and spacing_s != tf_s:
            raise BacktestError(f"timeframe {timeframe} does not match the candles, which are "
                                f"{timeframe_name(spacing_s)} apart")
    elif spacing_s:
        tf_s, timeframe = spacing_s, timeframe_name(spacing_s)
    else:
        raise BacktestError("one candle only: give more candles (or at least the timeframe)")
    tf_ms = tf_s * 1000

    # The date range.
    start_ms, end_ms = to_ms(start, "start"), to_ms(end, "end")
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
        raise BacktestError(str(exc)) from None
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
            raise BacktestError(str(exc)) from None
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
    trades = _trade_dicts(time_ms, sim.trades)
    closed = list(trades)
    if sim.open_trade is not None:
        e, price, amount, entry_fee = sim.open_trade
        last_close = float(tested["close"].iat[-1])
        pnl = unrealised_pnl(amount, last_close, bought=amount, entry_price=price, entry_fee=entry_fee)
        trades.append({
            "entry_time": iso_ms(int(time_ms[e])), "entry_time_ms": int(time_ms[e]), "exit_time": None,
            "exit_time_ms": None, "entry_price": price, "exit_price": None, "amount": amount,
            "entry_fee": entry_fee, "exit_fee": None, "fees": entry_fee, "pnl": pnl,
            "pnl_pct": round_trip_pnl_pct(pnl, amount, price, entry_fee), "exit_reason": None, "is_open": True,
        })
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


def _iso_array(ms: np.ndarray) -> list[str]:
    """Epoch ms → ISO 8601 UTC strings, vectorised (same text as :func:`iso_ms` for whole seconds)."""
    text = np.datetime_as_string(np.asarray(ms, dtype="int64").astype("datetime64[ms]"), unit="s")
    return [f"{t}Z" for t in text.tolist()]


def _trade_dicts(time_ms: np.ndarray, trades: list[tuple[int, float, float, float, int, float, float, str]]
                 ) -> list[dict[str, Any]]:
    """Closed trades as dicts (column-wise numpy: the same IEEE operations as per trade)."""
    if not trades:
        return []
    e, entry, amount, entry_fee, i, exit_price, exit_fee, reason = (np.array(col) for col in zip(*trades))
    entry_ms, exit_ms = time_ms[e.astype("int64")], time_ms[i.astype("int64")]
    pnl = round_trip_pnl(amount, entry, exit_price, entry_fee, exit_fee)
    pnl_pct = round_trip_pnl_pct(pnl, amount, entry, entry_fee)
    fees = entry_fee + exit_fee
    keys = ("entry_time", "entry_time_ms", "exit_time", "exit_time_ms", "entry_price", "exit_price", "amount",
            "entry_fee", "exit_fee", "fees", "pnl", "pnl_pct", "exit_reason", "is_open")
    columns = (_iso_array(entry_ms), entry_ms.tolist(), _iso_array(exit_ms), exit_ms.tolist(), entry.tolist(),
               exit_price.tolist(), amount.tolist(), entry_fee.tolist(), exit_fee.tolist(), fees.tolist(),
               pnl.tolist(), pnl_pct.tolist(), reason.tolist(), [False] * len(trades))
    return [dict(zip(keys, row)) for row in zip(*columns)]
