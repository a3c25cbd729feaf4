"""The stepped core: a stateful strategy (one with ``on_candle``) candle by candle through the
same :class:`~tradefleet.execution.account.CandleAccount` as a paper run."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from tradefleet.backtest.errors import BacktestError
from tradefleet.backtest.results import Simulation
from tradefleet.execution.account import CandleAccount
from tradefleet.execution.paper import MarketRules, Wallet
from tradefleet.models.candle import OHLCV_COLUMNS
from tradefleet.strategy.base import Strategy
from tradefleet.strategy.context import Candle, CandleContext, CandleWindow, check_state
from tradefleet.strategy.guard import StrategyError, call_guarded
from tradefleet.times import iso_ms


def simulate_stateful(strategy_cls: type[Strategy], params: dict[str, Any], frame: pd.DataFrame, offset: int,
                      enter: np.ndarray, exit_: np.ndarray, *, stake: float, rules: MarketRules,
                      stoploss: float | None, take_profit: float | None, trailing_stop: float | None,
                      position_size: float, timeout_s: float,
                      progress: Callable[[float], None] | None = None) -> Simulation:
    """Step a :class:`CandleAccount` over ``frame[offset:]`` candle by candle, calling the strategy's
    ``on_candle`` after each candle's fills, protective exits and signal decision, exactly as the
    fleet engine does for a paper run. ``frame[:offset]`` is the startup window; ``enter``/``exit_``
    are the tested candles' signals. Raises :class:`BacktestError` when the hook raises or leaves a
    state that is not JSON."""
    times = frame["time_ms"].to_numpy()
    o, h, low, c, v = (frame[col].to_numpy() for col in OHLCV_COLUMNS)
    n = len(frame) - offset
    account = CandleAccount(rules, wallet=Wallet(cash=stake), stoploss=stoploss, take_profit=take_profit,
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
        account.check_protective_exits(t, float(o[i]), float(h[i]), float(low[i]))
        account.close_candle(t, float(c[i]), enter=bool(enter[k]), exit_=bool(exit_[k]), size=position_size)
        ctx = CandleContext(account=account, candle=Candle(t, float(o[i]), float(h[i]), float(low[i]), float(c[i]),
                                                           float(v[i])),
                            candles=CandleWindow(frame, 0, i + 1), state=state, log=strategy.logger)
        try:
            call_guarded(strategy.on_candle, ctx, timeout_s=timeout_s, what=f"{strategy.name}.on_candle()")
            check_state(state)
        except (StrategyError, ValueError) as exc:
            raise BacktestError(f"{exc} (candle {iso_ms(t)})") from exc
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
