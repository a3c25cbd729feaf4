"""The fill model as a plain per-candle loop, written from the rules (``tradefleet/backtest/engine.py``
docstring) without looking at the event-driven engine: the oracle of the property tests."""

from __future__ import annotations

import numpy as np

from tradefleet.execution.paper import floor_to_step


def per_bar(o, h, l, c, enter, exit_, *, stake, fee, amount_step=None, min_cost=None, min_amount=None,
            position_size=1.0, stoploss=None, take_profit=None, trailing_stop=None):
    """Returns ``(trades, open_trade, equity)`` in the shapes of ``tradefleet.backtest.Simulation``."""
    n = len(o)
    cash, amount = float(stake), 0.0
    entry = None  # (row, price, amount, fee)
    hwm = None
    pending = None  # ("buy", budget) | ("sell",)
    trades = []
    equity = np.empty(n)
    protective = bool(stoploss or take_profit or trailing_stop)

    def sell(i, price, reason):
        nonlocal cash, amount, entry
        cost = amount * price
        f = cost * fee
        cash += cost - f
        trades.append((*entry, i, price, f, reason))
        amount, entry = 0.0, None

    for i in range(n):
        op, hi, lo, cl = float(o[i]), float(h[i]), float(l[i]), float(c[i])
        # 1. the pending order fills at this open
        if pending is not None:
            if pending[0] == "buy":
                budget = pending[1] or cash
                amt = floor_to_step(min(budget, cash) / (op * (1.0 + fee)), amount_step)
                rejected = amt <= 0 or (min_amount and amt < min_amount) or (min_cost and amt * op < min_cost)
                if not rejected:
                    cost = amt * op
                    f = cost * fee
                    cash -= cost + f
                    amount, entry, hwm = amt, (i, op, amt, f), op
            else:
                sell(i, op, "exit_long")
            pending = None
        # 2. protective exits
        if amount > 0 and protective:
            E = entry[1]
            fixed = E * (1.0 + stoploss) if stoploss else None
            trail = hwm * (1.0 - trailing_stop) if trailing_stop else None
            levels = [x for x in (fixed, trail) if x is not None]
            stop = max(levels) if levels else None
            reason = "trailing_stop" if trail is not None and (fixed is None or trail > fixed) else "stoploss"
            target = E * (1.0 + take_profit) if take_profit else None
            if stop is not None and op <= stop:
                sell(i, op, reason)
            elif target is not None and op >= target:
                sell(i, op, "take_profit")
            elif stop is not None and lo <= stop:
                sell(i, stop, reason)
            elif target is not None and hi >= target:
                sell(i, target, "take_profit")
            else:
                hwm = max(hwm, hi)
        # 3. this close's signals
        if pending is None:
            if amount > 0 and exit_[i]:
                pending = ("sell",)
            elif amount == 0 and enter[i] and not exit_[i]:
                pending = ("buy", cash * position_size)
        # 4. equity at the close
        equity[i] = cash + amount * cl
    return trades, entry, equity
