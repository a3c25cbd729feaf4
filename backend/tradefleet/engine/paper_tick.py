"""The paper decision: a paper run stepped through the candles it has not seen, on the paper account.

For each candle, oldest first: pending orders fill at its open, protective exits (stoploss, take
profit, trailing stop) on its range, the strategy's signals (or ``on_candle``) decide at its close,
and the equity is snapshotted at the close (the per-candle rules are
:class:`~tradefleet.execution.account.CandleAccount`'s, the backtest's too). The strategy's calls and
the account's steps happen in memory first; rows are written only if the whole tick succeeded, so a
:class:`StrategyError` leaves the run exactly as it was.
"""

from __future__ import annotations

import logging

from tradefleet.engine.run_rows import RunRow, stored_account
from tradefleet.engine.signals import TickSignals
from tradefleet.engine.tick_rows import TickRows
from tradefleet.engine.window import TickWindow
from tradefleet.execution.account import StepEvents
from tradefleet.models import EventLevel, Order, Trade
from tradefleet.models._types import utcnow
from tradefleet.strategy.context import CandleContext, CandleWindow, RunLogger, check_state
from tradefleet.strategy.guard import StrategyError, call_guarded

log = logging.getLogger(__name__)


def internal_error(run: RunRow, exc: Exception) -> StrategyError:
    """The reason a run pauses on the platform's own bug: the traceback goes to the worker log, the
    trader sees a reason (nothing of the run has been written yet, so pausing it is safe)."""
    log.exception("run %s: internal error while evaluating", run.id)
    return StrategyError(f"internal error while evaluating the run ({type(exc).__name__}); "
                         "the platform's operators have the details")


def run_on_candle(strategy, run: RunRow, ctx: CandleContext, timeout_s: float) -> None:
    """Call the strategy's ``on_candle(ctx)`` under its time budget and check the state it left.
    Raises :class:`StrategyError`."""
    call_guarded(strategy.on_candle, ctx, timeout_s=timeout_s, what=f"{run.strategy}.on_candle()")
    try:
        check_state(ctx.state)
    except ValueError as exc:
        raise StrategyError(f"{run.strategy}.on_candle(): {exc}") from exc


def tick_paper(run: RunRow, pending: list[Order], trade: Trade | None, *, window: TickWindow,
               signals: TickSignals, rows: TickRows) -> None:
    """Step paper ``run`` through the window's candles it has not seen (``pending``: its open orders,
    ``trade``: its open round trip). Raises :class:`StrategyError` (nothing written) for the caller to
    pause the run."""
    settings = signals.settings
    n = len(window)
    first, skip = window.first_unseen(run.last_candle_ms, settings.ENGINE_MAX_CATCHUP_CANDLES)
    if first is None:
        return
    if skip is not None:
        behind, skipped = skip
        rows.buffer.event(run, "skipped", f"run was {behind} candles behind; skipped {skipped} "
                          "candles to catch up", level=EventLevel.warning, candle_ms=window.time_ms(-1))

    try:
        strategy, key_params, need = signals.strategy(run)
        start = max(0, first - (need - 1))
        decisions: dict[int, tuple[bool, bool]] = {}
        log_lines: list[tuple[int, str, str]] = []
        if strategy.has_signals():
            reader, lines = signals.signals(strategy, run, key_params, start)
            log_lines += [(window.time_ms(-1), level, text) for level, text in lines]
            for i in range(max(first, start + need - 1), n):
                decisions[i] = (reader.at(i - start, "enter_long"), reader.at(i - start, "exit_long"))

        account = stored_account(run, strategy, rows.broker.rules, pending, trade)
        stateful = strategy.is_stateful()
        state = dict(run.state or {})
        logger = RunLogger(run.strategy)
        strategy.logger = logger
        steps: list[tuple[int, StepEvents, float, float, float]] = []
        for i in range(first, n):
            candle = window.candle(i)
            t = candle.time_ms
            account.open_candle(t, candle.open)
            account.check_protective_exits(t, candle.open, candle.high, candle.low)
            if i in decisions:
                enter, exit_ = decisions[i]
                account.close_candle(t, candle.close, enter=enter, exit_=exit_, size=strategy.position_size)
            if stateful and i - start >= need - 1:
                ctx = CandleContext(account=account, candle=candle, candles=CandleWindow(window.frame, start, i + 1),
                                    state=state, log=logger)
                run_on_candle(strategy, run, ctx, settings.STRATEGY_TIMEOUT_S)
            log_lines += [(t, level, text) for level, text in logger.take()]
            steps.append((i, account.take_events(), account.equity(candle.close), account.wallet.cash,
                          account.wallet.position_amount))
    except StrategyError:
        raise
    except Exception as exc:  # noqa: BLE001 - our own bug must not stall the other runs
        raise internal_error(run, exc) from exc

    # The tick succeeded: write it.
    for i, events, equity, cash, position in steps:
        t, close = window.time_ms(i), float(window.close[i])
        rows.apply_paper(run, t, close, events, position)
        rows.buffer.snapshot(run.id, t, cash=cash, position_amount=position, price=close, equity=equity)
        rows.report.ticks += 1
    for t, level, text in log_lines:
        rows.buffer.event(run, "log", text, level=EventLevel(level), candle_ms=t)
    if account.position is not None:
        account.position.store()
    wallet = account.wallet
    run.cash, run.position_amount = wallet.cash, wallet.position_amount
    run.position_entry_price = account.position.entry_price if account.position is not None else None
    run.realised_pnl, run.fees_paid = wallet.realised_pnl, wallet.fees_paid
    if stateful:
        run.state = state
    run.last_candle_ms = window.time_ms(-1)
    run.last_price = float(window.close[-1])
    run.last_tick_at = utcnow()
    run.ticked = True
    run.stepped = range(first, n)


__all__ = ["internal_error", "run_on_candle", "tick_paper"]
