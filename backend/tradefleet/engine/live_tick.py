"""The live decision: a live run stepped on the latest closed candle only (an older candle's decision
is stale for real orders).

The strategy and the decision rules are the paper path's (signals, protective exits, ``on_candle``),
read against the run's wallet as mirrored from the exchange's fills; what they decide becomes order
**intents** (rows with status ``intent``, committed with the tick), which ``live.process_order`` tasks
send after the commit. No fill is simulated and no exchange is called here.

No new decision while an order of the run is still pending (intent, submitted, open, unknown), nor
while trading is halted (a ``halted`` event is recorded instead). Equity is snapshotted at the close
either way.
"""

from __future__ import annotations

from dataclasses import replace as dc_replace

from tradefleet.engine.paper_tick import internal_error, run_on_candle
from tradefleet.engine.run_rows import RunRow, stored_account
from tradefleet.engine.signals import TickSignals
from tradefleet.engine.tick_rows import TickRows
from tradefleet.engine.window import TickWindow
from tradefleet.execution.account import PendingOrder, CandleAccount
from tradefleet.models import EventLevel, Order, Trade
from tradefleet.models._types import utcnow
from tradefleet.strategy.context import CandleContext, CandleWindow, RunLogger
from tradefleet.strategy.guard import StrategyError


def tick_live(run: RunRow, pending: list[Order], trade: Trade | None, *, halted: str | None,
              window: TickWindow, signals: TickSignals, rows: TickRows) -> None:
    """Decide live ``run`` on the window's latest candle (``pending``: its orders not yet resolved,
    ``trade``: its open round trip, ``halted``: why trading is halted, or None). Raises
    :class:`StrategyError` (nothing written) for the caller to pause the run."""
    settings = signals.settings
    i = len(window) - 1
    candle = window.candle(i)
    t = candle.time_ms
    timeframe_ms = window.market.timeframe_ms
    if run.last_candle_ms is not None and t <= run.last_candle_ms:
        return  # already evaluated
    if run.last_candle_ms is not None and t - run.last_candle_ms > timeframe_ms:
        missed = (t - run.last_candle_ms) // timeframe_ms - 1
        rows.buffer.event(run, "skipped", f"live: acted on the latest closed candle only; {missed} earlier "
                          "candle(s) not traded", level=EventLevel.warning, candle_ms=t)
    state = dict(run.state or {})
    log_lines: list[tuple[int, str, str]] = []
    decided: list[PendingOrder] = []
    trade_hwm: float | None = None
    try:
        strategy, key_params, need = signals.strategy(run)
        start = max(0, i - (need - 1))
        enter = exit_ = False
        if strategy.has_signals() and i - start >= need - 1:
            reader, lines = signals.signals(strategy, run, key_params, start)
            log_lines += [(t, level, text) for level, text in lines]
            enter, exit_ = reader.at(i - start, "enter_long"), reader.at(i - start, "exit_long")
        if halted is not None:
            rows.buffer.event(run, "halted", f"no decision on this candle: {halted}", level=EventLevel.warning,
                              candle_ms=t)
        elif pending:
            pass  # the pending order is resolved first, off the tick (TickReport.live_pending_order_ids)
        else:
            rules = rows.broker.rules
            account = stored_account(run, strategy, rules, [], trade)
            dust = max(rules.amount_step or 0.0, rules.min_amount or 0.0)
            if trade is None and run.position_amount < dust:
                # What a fee taken in base leaves behind cannot be sold: the run counts as flat.
                account.wallet.position_amount = 0.0
            exit_reason = None
            if account.position is not None:
                # Would a resting stop / target have triggered during this candle? Asked of a throw-away
                # copy (its simulated fill is discarded): live, the exit is a market sell now.
                probe = CandleAccount(rules, wallet=dc_replace(account.wallet),
                                      position=dc_replace(account.position, ref=None),
                                      stoploss=strategy.stoploss, take_profit=strategy.take_profit,
                                      trailing_stop=strategy.trailing_stop)
                probe.check_protective_exits(t, candle.open, candle.high, candle.low)
                exits = probe.take_events().placed
                if exits:
                    exit_reason = exits[0].reason
                else:
                    trade_hwm = probe.position.high_water
            if exit_reason is not None:
                account.sell(t, reason=exit_reason)
            else:
                account.close_candle(t, candle.close, enter=enter, exit_=exit_, size=strategy.position_size)
            if strategy.is_stateful() and i - start >= need - 1:
                logger = RunLogger(run.strategy)
                strategy.logger = logger
                ctx = CandleContext(account=account, candle=candle, candles=CandleWindow(window.frame, start, i + 1),
                                    state=state, log=logger)
                run_on_candle(strategy, run, ctx, settings.STRATEGY_TIMEOUT_S)
                log_lines += [(t, level, text) for level, text in logger.take()]
            decided = account.take_events().placed
    except StrategyError:
        raise
    except Exception as exc:  # noqa: BLE001 - as on paper: our bug pauses this run only
        raise internal_error(run, exc) from exc

    rows.live_intents(run, t, candle.close, decided)
    if trade is not None and trade_hwm is not None:
        trade.high_water_mark = trade_hwm
    for when, level, text in log_lines:
        rows.buffer.event(run, "log", text, level=EventLevel(level), candle_ms=when)
    rows.buffer.snapshot(run.id, t, cash=run.cash, position_amount=run.position_amount, price=candle.close,
                         equity=run.cash + run.position_amount * candle.close)
    rows.report.ticks += 1
    if strategy.is_stateful():
        run.state = state
    run.last_candle_ms = t
    run.last_price = candle.close
    run.last_tick_at = utcnow()
    run.ticked = True
    run.stepped = range(i, len(window))


__all__ = ["tick_live"]
