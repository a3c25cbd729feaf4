"""The vector core: a signal strategy's fill model (:mod:`tradefleet.backtest.engine`) over numpy arrays.

Event-driven with numpy, not a loop over every candle: :func:`simulate` jumps from one entry
signal to the fill, finds the next exit signal with a binary search, and scans only the candles in
between (vectorised, in growing chunks) for a protective exit: ``np.maximum.accumulate`` gives the
trailing high-water mark, the first ``True`` of the trigger mask the exit candle. The equity curve
is built from the few points where cash or position change. Every price is computed with the same
floating-point operations as the fill model's rules (and as ``PaperBroker``), so the result equals a plain
per-candle loop bit for bit (``tests/backtest`` checks this on random signals and settings).
"""

from __future__ import annotations

from bisect import bisect_left

import numpy as np

from tradefleet.backtest.results import Simulation
from tradefleet.execution.paper import floor_to_step
from tradefleet.models.order import OrderReason

_FIRST_CHUNK = 32
"""Candles scanned at once for a protective exit; each further chunk is 4 times longer."""


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
                reason = OrderReason.stoploss.value
                if trail is not None and (fixed is None or float(trail[k]) > fixed):
                    reason = OrderReason.trailing_stop.value
                if price_open <= level:
                    return i, price_open, reason
            if target is not None and price_open >= target:
                return i, price_open, OrderReason.take_profit.value
            if stop is not None and float(low[i]) <= level:
                return i, level, reason
            return i, target, OrderReason.take_profit.value
        if factor is not None:
            hwm = max(hwm, float(hh.max()))
        start, size = stop_at, size * 4
    return None


def simulate(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, enter: np.ndarray,
             exit_: np.ndarray, *, stake: float, fee: float, amount_step: float | None = None,
             min_cost: float | None = None, min_amount: float | None = None, position_size: float = 1.0,
             stoploss: float | None = None, take_profit: float | None = None,
             trailing_stop: float | None = None) -> Simulation:
    """Run the fill model (:mod:`tradefleet.backtest.engine`) over price arrays and boolean signal arrays of equal
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
            i, exit_price, reason = x + 1, float(o[x + 1]), OrderReason.exit_long.value
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
