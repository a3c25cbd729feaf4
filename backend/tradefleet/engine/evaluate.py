"""Evaluating every due run of one market on its newly closed candle(s).

One call handles one batch of runs of one market. It fetches the candle window once (cached by
market and candle time), then for each run, for each candle the run has not seen yet (oldest
first): fills the run's pending orders at that candle's open, applies the stoploss on its low,
reads the strategy's signals for that candle, writes order intents, and snapshots equity at the
close. All of a batch's writes commit in one transaction.

Cost (the fleet benchmark, ``bench/fleet.py``): a tick is dominated by the strategy's own
``signals()``; around it the engine keeps per-run work small. Runs are read and written as plain
rows (one ``SELECT ... FOR UPDATE`` and one executemany ``UPDATE`` per batch, no ORM unit of work),
snapshots, fills and events are bulk inserts, a run's validated parameters and window size are
remembered per process (keyed by the strategy class, so an edited strategy file is re-validated),
and only the two signal columns of the strategy's output are read, as arrays. Orders and trades,
written on a small fraction of ticks, stay ORM objects.

Idempotence: each run row is locked (``SELECT ... FOR UPDATE``) and re-read; candles at or before
its ``last_candle_ms`` are skipped, and ``(run_id, candle_ms)`` is unique in ``equity_snapshot``,
so a task delivered twice changes nothing the second time.

Runs whose row another transaction holds (the previous candle's task of the same runs, still
running; a stop from the API) are skipped, not waited for (``SKIP LOCKED``), and listed in the
report's ``busy_run_ids``: the Celery task evaluates them again shortly. Waiting would park a worker
process on a row lock while other markets' tasks queue, which turns a short overload into a
growing backlog.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from tradefleet.config import get_settings
from tradefleet.db import lock_for_write, session_scope
from tradefleet.events import Outbox, jsonable
from tradefleet.execution.account import Intent, PaperAccount, StepEvents
from tradefleet.execution.ledger import RoundTrip
from tradefleet.execution.order_ids import client_order_id
from tradefleet.execution.paper import MarketRules, PaperBroker, Wallet
from tradefleet.market.candles import Market, get_candles
from tradefleet.models import (
    LIVE_PENDING,
    EquitySnapshot,
    EventLevel,
    ExchangeMarket,
    Fill,
    FillPublic,
    Order,
    OrderPublic,
    OrderSide,
    OrderStatus,
    OrderType,
    Run,
    RunEvent,
    RunEventPublic,
    RunMode,
    RunStatus,
    Trade,
    TradePublic,
    TradeStatus,
)
from tradefleet.models._types import utcnow
from tradefleet.strategy.base import Strategy
from tradefleet.strategy.context import Candle, CandleContext, CandleWindow, RunLogger, check_state
from tradefleet.strategy.guard import SignalReader, StrategyError, call_guarded, compute_signals
from tradefleet.strategy.params import ParamError
from tradefleet.strategy.registry import get_registry
from tradefleet.strategy.versions import UnknownVersion, current_bundled_version_id, strategy_for_version

log = logging.getLogger(__name__)

@dataclass
class TickReport:
    """What one ``evaluate_market`` call did (returned by the Celery task, logged, benchmarked)."""

    market: str
    candle_ms: int
    runs: int = 0
    ticks: int = 0
    paused: int = 0
    orders: int = 0
    fills: int = 0
    seconds: float = 0.0
    busy: int = 0
    """Runs skipped because another transaction held their row (see ``busy_run_ids``)."""
    busy_run_ids: list[uuid.UUID] = field(default_factory=list, repr=False)
    live_order_ids: list[uuid.UUID] = field(default_factory=list, repr=False)
    """Live order intents this tick committed, for the caller to send after the commit, each on its own
    (the worker enqueues one ``live.process_order`` task per order)."""
    live_pending_order_ids: list[uuid.UUID] = field(default_factory=list, repr=False)
    """Orders of live runs still pending at this tick (their runs took no decision): the caller has each
    resolved with the exchange (``live.process_order``), off the tick."""


@dataclass
class _Batch:
    """Rows collected for one bulk write."""

    snapshots: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    fills: list[dict[str, Any]] = field(default_factory=list)

    def event(self, run: Run | _RunRow, kind: str, message: str, *, level: EventLevel = EventLevel.info,
              candle_ms: int | None = None, data: dict[str, Any] | None = None) -> None:
        self.events.append(dict(run_id=run.id, created_at=utcnow(), candle_ms=candle_ms, level=level.value,
                                kind=kind, message=message, data=data or {}))


class _RunRow:
    """The columns of a ``run`` row that a tick reads and writes (a plain object: no ORM tracking).
    Duck-compatible with :class:`Run` for :func:`pause_run` and the order and event helpers."""

    __slots__ = ("id", "strategy", "params", "symbol", "status", "status_reason", "last_candle_ms", "cash",
                 "position_amount", "position_entry_price", "realised_pnl", "fees_paid", "last_price",
                 "last_tick_at", "state", "mode", "owner_id", "strategy_version_id", "ticked", "stepped")

    COLUMNS = ("id", "strategy", "params", "symbol", "status", "status_reason", "last_candle_ms", "cash",
               "position_amount", "position_entry_price", "realised_pnl", "fees_paid", "last_price",
               "last_tick_at", "state", "mode", "owner_id", "strategy_version_id")

    def __init__(self, row: Any) -> None:
        for name, value in zip(self.COLUMNS, row):
            setattr(self, name, value)
        self.ticked = False
        self.stepped: range = range(0)
        """Window indexes of the candles this tick evaluated (for the live updates)."""


_TICKED = ("cash", "position_amount", "position_entry_price", "realised_pnl", "fees_paid", "last_candle_ms",
           "last_price", "last_tick_at", "state", "strategy_version_id")
"""The columns a tick changes; a paused run changes ``status`` and ``status_reason``."""

_CACHE_LIMIT = 50_000
_validated: dict[tuple[type, str], tuple[dict[str, Any], int]] = {}
"""Per process: (strategy class, parameters as JSON) -> (validated parameters, required candles)."""


def _rules(info: ExchangeMarket) -> MarketRules:
    return MarketRules(taker=info.taker, amount_step=info.amount_step, min_amount=info.min_amount,
                       min_cost=info.min_cost)


def pause_run(run: Run | _RunRow, reason: str, batch: _Batch, *, candle_ms: int | None = None) -> None:
    """Pause ``run`` with a visible reason (status, ``status_reason`` and an error event)."""
    run.status = RunStatus.paused
    run.status_reason = reason
    batch.event(run, "paused", reason, level=EventLevel.error, candle_ms=candle_ms)


class _RunTicker:
    """Ticks the runs of one batch against one candle window."""

    def __init__(self, session: Session, market: Market, candles: pd.DataFrame, info: ExchangeMarket,
                 batch: _Batch, report: TickReport) -> None:
        self.session = session
        self.market = market
        self.candles = candles
        self.times = candles["time_ms"].to_numpy()
        self.open = candles["open"].to_numpy()
        self.high = candles["high"].to_numpy()
        self.low = candles["low"].to_numpy()
        self.close = candles["close"].to_numpy()
        self.volume = candles["volume"].to_numpy()
        self.info = info
        self.broker = PaperBroker(_rules(info))
        self.batch = batch
        self.report = report
        self.settings = get_settings()
        self.registry = get_registry()
        self._signals: dict[tuple[str, str, int], tuple[SignalReader, list[tuple[str, str]]]] = {}
        self._signal_errors: dict[tuple[str, str, int], StrategyError] = {}
        # Rows this tick created or changed, per run, for the live updates published after commit.
        self.touched_orders: dict[uuid.UUID, dict[uuid.UUID, Order]] = defaultdict(dict)
        self.touched_trades: dict[uuid.UUID, list[Trade]] = defaultdict(list)

    # ------------------------------------------------------------------ strategy
    def _strategy(self, run: _RunRow) -> tuple[Strategy, str, int]:
        """The run's strategy instance (of the version it pins), its parameters as JSON and the candles
        one evaluation needs. A run stored before versions is pinned here to the current bundled version
        of its strategy (written with the tick)."""
        if run.strategy_version_id is None:
            run.strategy_version_id = current_bundled_version_id(self.session, run.strategy)
        try:
            if run.strategy_version_id is None:
                raise UnknownVersion(run.strategy)
            klass = strategy_for_version(run.strategy_version_id, session=self.session)
        except UnknownVersion:
            raise StrategyError(f"strategy {run.strategy!r} is not available (no such version)") from None
        except Exception as exc:  # the sandbox's StrategyLoadError / SandboxUnavailable
            from tradefleet.sandbox import SandboxUnavailable, StrategyLoadError

            if isinstance(exc, (StrategyLoadError, SandboxUnavailable)):
                raise StrategyError(f"strategy {run.strategy!r} cannot be run: "
                                    f"{getattr(exc, 'message', None) or exc}") from None
            raise
        raw = json.dumps(run.params, sort_keys=True)
        logger = logging.getLogger(f"tradefleet.strategy.{run.strategy}")
        known = _validated.get((klass, raw))
        if known is not None:
            return klass(known[0], logger=logger), raw, known[1]
        try:
            params = call_guarded(klass.validate_params, run.params, timeout_s=self.settings.STRATEGY_TIMEOUT_S,
                                  what=f"{run.strategy} parameter check")
        except StrategyError as exc:
            if isinstance(exc.__cause__, ParamError):
                raise StrategyError(f"parameters no longer valid for {run.strategy}: {exc.__cause__}") from None
            raise
        strategy = klass(params, logger=logger)
        need = int(call_guarded(strategy.required_candles, timeout_s=self.settings.STRATEGY_TIMEOUT_S,
                                what=f"{run.strategy}.startup_candles"))
        if len(_validated) >= _CACHE_LIMIT:
            _validated.clear()
        _validated[(klass, raw)] = (params, need)
        return strategy, raw, need

    @staticmethod
    def _signals_key(strategy: Strategy, run: _RunRow, key_params: str, start: int) -> tuple[str, str, int]:
        proxy = getattr(strategy, "proxy", None)
        return (proxy.content_hash if proxy is not None else run.strategy, key_params, start)

    def _signals_for(self, strategy: Strategy, run: _RunRow, key_params: str,
                     start: int) -> tuple[SignalReader, list[tuple[str, str]]]:
        """The strategy's signals on the window from ``start``, and the lines it logged meanwhile.
        Runs of the same strategy version and parameters on this market share one computation (and its
        log lines); :meth:`prefetch_signals` may have computed it already."""
        key = self._signals_key(strategy, run, key_params, start)
        failed = self._signal_errors.get(key)
        if failed is not None:
            raise StrategyError(str(failed))
        if key not in self._signals:
            logger = RunLogger(run.strategy)
            strategy.logger = logger
            # The iloc slice is this call's own frame (copy-on-write): no defensive copy needed.
            signals = SignalReader(compute_signals(strategy, self.candles.iloc[start:], copy=False,
                                                   timeout_s=self.settings.STRATEGY_TIMEOUT_S), strategy.name)
            self._signals[key] = (signals, logger.take())
        return self._signals[key]

    def _first_index(self, run: _RunRow) -> tuple[int | None, tuple[int, int] | None]:
        """The first window row ``run`` has not evaluated (None: nothing new), and ``(behind, skipped)``
        when it is further behind than ``ENGINE_MAX_CATCHUP_CANDLES`` and skips ahead."""
        n = len(self.times)
        last = run.last_candle_ms
        if last is None:
            return n - 1, None
        first = int(np.searchsorted(self.times, last, side="right"))
        if first >= n:
            return None, None  # already evaluated: a redelivered task does nothing
        behind = n - first
        gap = first == 0 and self.times[0] > last + self.market.timeframe_ms
        if gap:
            behind = int((self.times[-1] - last) // self.market.timeframe_ms)
        limit = self.settings.ENGINE_MAX_CATCHUP_CANDLES
        if behind > limit or gap:
            return max(0, n - min(limit, n)), (behind, behind - min(limit, n))
        return first, None

    def prefetch_signals(self, runs: list[_RunRow]) -> None:
        """Compute, in one request per sandboxed strategy version, the signals of every parameter set and
        window start this batch's runs need (the runner is asked once per market tick, not once per
        run). A run whose strategy cannot be resolved is left to :meth:`tick`, which pauses it."""
        n = len(self.times)
        wanted: dict[str, tuple[Any, dict[tuple[str, str, int], tuple[dict, int]]]] = {}
        for run in runs:
            try:
                strategy, key_params, need = self._strategy(run)
            except StrategyError:
                continue
            proxy = getattr(strategy, "proxy", None)
            if proxy is None or not strategy.has_signals():
                continue
            if run.mode == RunMode.live:
                if run.last_candle_ms is not None and int(self.times[-1]) <= run.last_candle_ms:
                    continue
                first = n - 1
            else:
                first, _ = self._first_index(run)
                if first is None:
                    continue
            start = max(0, first - (need - 1))
            key = self._signals_key(strategy, run, key_params, start)
            if key not in self._signals:
                wanted.setdefault(proxy.content_hash, (proxy, {}))[1][key] = (strategy.params, start)
        for proxy, items in wanted.values():
            if len(items) < 2:
                continue  # one computation: tick() asks for it as it goes
            try:
                # The proxy enforces the budget itself (SIGKILL of the runner), per request and per retry.
                results = proxy.signals_many(self.candles, [(p, s, n) for p, s in items.values()],
                                             budget_s=self.settings.STRATEGY_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - then each run's tick computes its own and pauses only itself
                log.exception("prefetching the signals of %s failed", proxy.name)
                continue
            for key, result in zip(items, results):
                if isinstance(result, StrategyError):
                    self._signal_errors[key] = result
                    continue
                frame, lines = result
                self._signals[key] = (SignalReader(frame, proxy.name), lines)

    # ------------------------------------------------------------------ one run
    def tick(self, run: _RunRow, pending: list[Order], trade: Trade | None) -> None:
        """Step ``run`` through the candles it has not seen. The strategy's calls and the account's
        steps happen in memory first; rows are written only if the whole tick succeeded, so a
        :class:`StrategyError` leaves the run exactly as it was."""
        n = len(self.times)
        first, skip = self._first_index(run)
        if first is None:
            return
        if skip is not None:
            behind, skipped = skip
            self.batch.event(run, "skipped", f"run was {behind} candles behind; skipped {skipped} "
                             "candles to catch up", level=EventLevel.warning, candle_ms=int(self.times[-1]))

        try:
            strategy, key_params, need = self._strategy(run)
            start = max(0, first - (need - 1))
            decisions: dict[int, tuple[bool, bool]] = {}
            log_lines: list[tuple[int, str, str]] = []
            if strategy.has_signals():
                signals, lines = self._signals_for(strategy, run, key_params, start)
                log_lines += [(int(self.times[-1]), level, text) for level, text in lines]
                for i in range(max(first, start + need - 1), n):
                    decisions[i] = (signals.at(i - start, "enter_long"), signals.at(i - start, "exit_long"))

            account = self._account(run, strategy, pending, trade)
            stateful = strategy.is_stateful()
            state = dict(run.state or {})
            logger = RunLogger(run.strategy)
            strategy.logger = logger
            steps: list[tuple[int, StepEvents, float, float, float]] = []
            for i in range(first, n):
                t = int(self.times[i])
                o, h, lo, c = float(self.open[i]), float(self.high[i]), float(self.low[i]), float(self.close[i])
                account.open_candle(t, o)
                account.protect(t, o, h, lo)
                if i in decisions:
                    enter, exit_ = decisions[i]
                    account.close_candle(t, c, enter=enter, exit_=exit_, size=strategy.position_size)
                if stateful and i - start >= need - 1:
                    ctx = CandleContext(account=account, candle=Candle(t, o, h, lo, c, float(self.volume[i])),
                                        candles=CandleWindow(self.candles, start, i + 1), state=state, log=logger)
                    call_guarded(strategy.on_candle, ctx, timeout_s=self.settings.STRATEGY_TIMEOUT_S,
                                 what=f"{run.strategy}.on_candle()")
                    try:
                        check_state(state)
                    except ValueError as exc:
                        raise StrategyError(f"{run.strategy}.on_candle(): {exc}") from None
                log_lines += [(t, level, text) for level, text in logger.take()]
                steps.append((i, account.take_events(), account.equity(c), account.wallet.cash,
                              account.wallet.position_amount))
        except StrategyError:
            raise
        except Exception as exc:  # noqa: BLE001 - our own bug must not stall the other runs
            # Nothing has been written for this run yet (the steps above are in memory), so pausing
            # it is safe; the traceback goes to the worker log, the trader sees a reason.
            log.exception("run %s: internal error while evaluating", run.id)
            raise StrategyError(f"internal error while evaluating the run ({type(exc).__name__}); "
                                "the platform's operators have the details") from exc

        # The tick succeeded: write it.
        for i, events, equity, cash, position in steps:
            self._apply(run, i, events, position)
            self.batch.snapshots.append(dict(
                run_id=run.id, candle_ms=int(self.times[i]), cash=cash, position_amount=position,
                price=float(self.close[i]), equity=equity, evaluated_at=utcnow()))
            self.report.ticks += 1
        for t, level, text in log_lines:
            self.batch.event(run, "log", text, level=EventLevel(level), candle_ms=t)
        if account.position is not None:
            account.position.store()
        wallet = account.wallet
        run.cash, run.position_amount = wallet.cash, wallet.position_amount
        run.position_entry_price = account.position.entry_price if account.position is not None else None
        run.realised_pnl, run.fees_paid = wallet.realised_pnl, wallet.fees_paid
        if stateful:
            run.state = state
        run.last_candle_ms = int(self.times[-1])
        run.last_price = float(self.close[-1])
        run.last_tick_at = utcnow()
        run.ticked = True
        run.stepped = range(first, n)

    # ------------------------------------------------------------------ one live run
    def tick_live(self, run: _RunRow, pending: list[Order], trade: Trade | None, *, halted: str | None) -> None:
        """Step a live run on the latest closed candle only (an older candle's decision is stale for
        real orders). The strategy and the decision rules are the paper path's (signals, protective
        exits, ``on_candle``), read against the run's wallet as mirrored from the exchange's fills;
        what they decide becomes order **intents** (rows with status ``intent``, committed with the
        tick), which ``live.process_order`` tasks send after the commit. No fill is simulated here.

        No new decision while an order of the run is still pending (intent, submitted, open,
        unknown), nor while trading is halted (``halted``: the reason; a ``halted`` event is
        recorded instead). Equity is snapshotted at the close either way."""
        n = len(self.times)
        i = n - 1
        t = int(self.times[i])
        if run.last_candle_ms is not None and t <= run.last_candle_ms:
            return  # already evaluated
        if run.last_candle_ms is not None and t - run.last_candle_ms > self.market.timeframe_ms:
            missed = (t - run.last_candle_ms) // self.market.timeframe_ms - 1
            self.batch.event(run, "skipped", f"live: acted on the latest closed candle only; {missed} earlier "
                             "candle(s) not traded", level=EventLevel.warning, candle_ms=t)
        o, h, lo, c = float(self.open[i]), float(self.high[i]), float(self.low[i]), float(self.close[i])
        state = dict(run.state or {})
        log_lines: list[tuple[int, str, str]] = []
        intents: list[Intent] = []
        trade_hwm: float | None = None
        try:
            strategy, key_params, need = self._strategy(run)
            start = max(0, i - (need - 1))
            enter = exit_ = False
            if strategy.has_signals() and i - start >= need - 1:
                signals, lines = self._signals_for(strategy, run, key_params, start)
                log_lines += [(t, level, text) for level, text in lines]
                enter, exit_ = signals.at(i - start, "enter_long"), signals.at(i - start, "exit_long")
            if halted is not None:
                self.batch.event(run, "halted", f"no decision on this candle: {halted}", level=EventLevel.warning,
                                 candle_ms=t)
            elif pending:
                pass  # the pending order is resolved first, off the tick (TickReport.live_pending_order_ids)
            else:
                account = self._account(run, strategy, [], trade)
                dust = max(self.info.amount_step or 0.0, self.info.min_amount or 0.0)
                if trade is None and run.position_amount < dust:
                    # What a fee taken in base leaves behind cannot be sold: the run counts as flat.
                    account.wallet.position_amount = 0.0
                exit_reason = None
                if account.position is not None:
                    # Would a resting stop / target have triggered during this candle? Asked of a throw-away
                    # copy (its simulated fill is discarded): live, the exit is a market sell now.
                    probe = PaperAccount(self.broker.rules, wallet=dc_replace(account.wallet),
                                         position=dc_replace(account.position, ref=None),
                                         stoploss=strategy.stoploss, take_profit=strategy.take_profit,
                                         trailing_stop=strategy.trailing_stop)
                    probe.protect(t, o, h, lo)
                    exits = probe.take_events().intents
                    if exits:
                        exit_reason = exits[0].reason
                    else:
                        trade_hwm = probe.position.high_water
                if exit_reason is not None:
                    account.sell(t, reason=exit_reason)
                else:
                    account.close_candle(t, c, enter=enter, exit_=exit_, size=strategy.position_size)
                if strategy.is_stateful() and i - start >= need - 1:
                    logger = RunLogger(run.strategy)
                    strategy.logger = logger
                    ctx = CandleContext(account=account, candle=Candle(t, o, h, lo, c, float(self.volume[i])),
                                        candles=CandleWindow(self.candles, start, i + 1), state=state, log=logger)
                    call_guarded(strategy.on_candle, ctx, timeout_s=self.settings.STRATEGY_TIMEOUT_S,
                                 what=f"{run.strategy}.on_candle()")
                    try:
                        check_state(state)
                    except ValueError as exc:
                        raise StrategyError(f"{run.strategy}.on_candle(): {exc}") from None
                    log_lines += [(t, level, text) for level, text in logger.take()]
                intents = account.take_events().intents
        except StrategyError:
            raise
        except Exception as exc:  # noqa: BLE001 - as in tick(): our bug pauses this run only
            log.exception("live run %s: internal error while evaluating", run.id)
            raise StrategyError(f"internal error while evaluating the run ({type(exc).__name__}); "
                                "the platform's operators have the details") from exc

        sequence: dict[int, int] = {}
        for intent in intents:
            seq = sequence[intent.signal_ms] = sequence.get(intent.signal_ms, -1) + 1
            if intent.side == "buy":
                estimate = self.broker.buy_amount(intent.quote_amount or 0.0, c)
            else:
                estimate = intent.amount if intent.amount is not None else run.position_amount
            order = self._new_order(run, OrderSide(intent.side), intent.signal_ms, estimate, intent.reason,
                                    quote_amount=intent.quote_amount, seq=seq, status=OrderStatus.intent)
            self.report.live_order_ids.append(order.id)
            self.batch.event(run, "order_intent", f"{intent.side} intent ({intent.reason}) written as "
                             f"{order.client_order_id}", candle_ms=t,
                             data={"order_id": str(order.id), "client_order_id": order.client_order_id,
                                   "side": intent.side, "quote_amount": intent.quote_amount, "amount": estimate})
        if trade is not None and trade_hwm is not None:
            trade.high_water_mark = trade_hwm
        for when, level, text in log_lines:
            self.batch.event(run, "log", text, level=EventLevel(level), candle_ms=when)
        self.batch.snapshots.append(dict(
            run_id=run.id, candle_ms=t, cash=run.cash, position_amount=run.position_amount, price=c,
            equity=run.cash + run.position_amount * c, evaluated_at=utcnow()))
        self.report.ticks += 1
        if strategy.is_stateful():
            run.state = state
        run.last_candle_ms = t
        run.last_price = c
        run.last_tick_at = utcnow()
        run.ticked = True
        run.stepped = range(i, n)

    def _account(self, run: _RunRow, strategy: Strategy, pending: list[Order], trade: Trade | None) -> PaperAccount:
        """The run's paper account as stored: wallet from the run row, the open round trip from its
        trade row, pending orders from its open orders."""
        wallet = Wallet(cash=run.cash, position_amount=run.position_amount, realised_pnl=run.realised_pnl,
                        fees_paid=run.fees_paid)
        position = None
        if trade is not None and run.position_amount > 0:
            position = RoundTrip.from_trade(trade, run.position_amount)
        # A sell the platform decided (exit signal) sells the whole position; a strategy's own sell
        # (on_candle) sells the amount it asked for.
        intents = [Intent(side=o.side.value, reason=o.reason, signal_ms=o.signal_candle_ms,
                          quote_amount=o.quote_amount, amount=o.amount if o.reason == "sell" else None, ref=o)
                   for o in pending if o.status == OrderStatus.open]
        return PaperAccount(self.broker.rules, wallet=wallet, position=position, pending=intents,
                            stoploss=strategy.stoploss, take_profit=strategy.take_profit,
                            trailing_stop=strategy.trailing_stop)

    def _apply(self, run: _RunRow, i: int, events: StepEvents, position_amount: float) -> None:
        """Write one candle's events as rows: new orders, fills, rejections, trades.
        ``position_amount``: the position at this candle's close (what a whole-position sell decided
        on it will sell)."""
        t = int(self.times[i])
        sequence: dict[int, int] = {}
        for intent in events.intents:
            seq = sequence[intent.signal_ms] = sequence.get(intent.signal_ms, -1) + 1
            estimate = intent.amount
            if estimate is None:
                estimate = (self.broker.buy_amount(intent.quote_amount or 0.0, float(self.close[i]))
                            if intent.side == "buy" else position_amount)
            intent.ref = self._new_order(run, OrderSide(intent.side), intent.signal_ms, estimate, intent.reason,
                                         quote_amount=intent.quote_amount, seq=seq)
        for intent, reason in events.rejected:
            order = intent.ref
            order.status, order.status_reason, order.updated_at = OrderStatus.rejected, reason, utcnow()
            self.touched_orders[run.id][order.id] = order
            self.batch.event(run, "order_rejected", f"{order.side.value} order rejected: {reason}",
                             level=EventLevel.warning, candle_ms=t)
        for position in events.opened:
            self.session.add(position.new_trade(run.id))
            self.touched_trades[run.id].append(position.ref)
        for fill_event in events.fills:
            self._record_fill(run, fill_event.intent.ref, fill_event.fill, fill_event.time_ms)
        for closed in events.closed:
            trade = closed.round_trip.close(time_ms=closed.exit_time_ms, reason=closed.reason)
            self.touched_trades[run.id].append(trade)

    def _record_fill(self, run: _RunRow, order: Order, fill, candle_ms: int) -> None:
        order.status = OrderStatus.filled
        order.amount = fill.amount
        order.filled, order.average, order.cost, order.fee = fill.amount, fill.price, fill.cost, fill.fee
        order.fee_currency = self.info.quote
        order.updated_at = utcnow()
        self.touched_orders[run.id][order.id] = order
        self.batch.fills.append(dict(order_id=order.id, run_id=run.id, side=order.side.value, time_ms=candle_ms,
                                     price=fill.price, amount=fill.amount, cost=fill.cost, fee=fill.fee,
                                     fee_currency=self.info.quote, created_at=utcnow()))
        self.report.fills += 1
        verb = "bought" if fill.side == "buy" else "sold"
        why = "" if order.reason in ("enter_long", "exit_long", "buy", "sell") else f" ({order.reason})"
        self.batch.event(run, "fill", f"{verb} {fill.amount:g} {self.info.base} at {fill.price:g} "
                         f"{self.info.quote}{why}, fee {fill.fee:.6g} {self.info.quote}", candle_ms=candle_ms,
                         data={"order_id": str(order.id), "side": fill.side, "price": fill.price,
                               "amount": fill.amount, "fee": fill.fee, "reason": order.reason})

    def _new_order(self, run: _RunRow, side: OrderSide, signal_ms: int, amount: float, reason: str,
                   *, quote_amount: float | None = None, seq: int = 0,
                   status: OrderStatus = OrderStatus.open) -> Order:
        order = Order(run_id=run.id, client_order_id=client_order_id(run.id, signal_ms, reason, seq),
                      symbol=run.symbol, side=side, type=OrderType.market, amount=amount,
                      quote_amount=quote_amount, status=status, reason=reason, signal_candle_ms=signal_ms)
        self.session.add(order)
        self.touched_orders[run.id][order.id] = order
        self.report.orders += 1
        return order


def evaluate_market(market: Market, candle_ms: int, run_ids: list[uuid.UUID], *, limit: int) -> TickReport:
    """Tick the given runs of ``market`` up to the candle opening at ``candle_ms``.

    ``limit`` is the window the scheduler sized for these runs (startup candles plus catch-up).
    Runs that are no longer running are skipped. A strategy that raises, times out or returns bad
    signals pauses its own run only. Raises ccxt errors and ``MarketDataNotReady`` from the fetch
    (the Celery task retries those) before anything is written.
    """
    started = time.perf_counter()
    report = TickReport(market=market.key, candle_ms=candle_ms)
    candles = get_candles(market, until_ms=candle_ms, limit=limit)
    # No exchange call of a live order happens here: a tick only reads the database, decides and
    # writes. A live run with an order still pending takes no decision (tick_live); the caller has its
    # orders driven, off the tick, and new intents sent (report.live_order_ids, live_pending_order_ids).
    batch = _Batch()
    with session_scope() as session:
        lock_for_write(session)
        info = session.get(ExchangeMarket, (market.exchange, market.symbol))
        if info is None:
            raise LookupError(f"market {market.exchange} {market.symbol} is not in the catalog")
        table = Run.__table__
        runs = [_RunRow(row) for row in session.execute(
            select(*(table.c[name] for name in _RunRow.COLUMNS))
            .where(table.c.id.in_(run_ids), table.c.status == RunStatus.running)
            .order_by(table.c.id).with_for_update(skip_locked=True)
        )]
        ids = [run.id for run in runs]
        if len(ids) < len(run_ids):
            # Not running any more, or locked by another transaction: the latter are retried.
            seen = set(ids)
            rest = [i for i in run_ids if i not in seen]
            report.busy_run_ids = list(session.execute(
                select(table.c.id).where(table.c.id.in_(rest), table.c.status == RunStatus.running)).scalars())
            report.busy = len(report.busy_run_ids)
        pending: dict[uuid.UUID, list[Order]] = defaultdict(list)
        trades: dict[uuid.UUID, Trade] = {}
        live = {run.id for run in runs if run.mode == RunMode.live}
        paper_ids = [i for i in ids if i not in live]
        if paper_ids:
            for order in session.exec(select(Order).where(Order.run_id.in_(paper_ids),
                                                          Order.status == OrderStatus.open)
                                      .order_by(Order.created_at)):
                pending[order.run_id].append(order)
        if live:
            for order in session.exec(select(Order).where(Order.run_id.in_(list(live)),
                                                          Order.status.in_(LIVE_PENDING))
                                      .order_by(Order.created_at)):
                pending[order.run_id].append(order)
            report.live_pending_order_ids = [order.id for run_id in live for order in pending[run_id]]
        halted = None
        if live:
            from tradefleet.execution.risk import get_halt

            halt = get_halt(session)
            halted = (f"trading is halted by an admin{': ' + halt.reason if halt.reason else ''}"
                      if halt.halted else None)
        if ids:
            trades = {t.run_id: t for t in session.exec(
                select(Trade).where(Trade.run_id.in_(ids), Trade.status == TradeStatus.open))}
        ticker = _RunTicker(session, market, candles, info, batch, report)
        ticker.prefetch_signals(runs)
        paused: list[_RunRow] = []
        for run in runs:
            report.runs += 1
            try:
                if run.mode == RunMode.live:
                    ticker.tick_live(run, pending[run.id], trades.get(run.id), halted=halted)
                else:
                    ticker.tick(run, pending[run.id], trades.get(run.id))
            except StrategyError as exc:
                report.paused += 1
                pause_run(run, str(exc), batch, candle_ms=candle_ms)
                paused.append(run)
        try:
            session.flush()  # orders and trades (ORM objects)
            ticked = [{"id": run.id, **{name: getattr(run, name) for name in _TICKED}} for run in runs if run.ticked]
            if ticked:
                session.execute(update(Run), ticked)  # executemany, by primary key
            if paused:
                session.execute(update(Run), [{"id": run.id, "status": run.status,
                                               "status_reason": run.status_reason} for run in paused])
            if batch.snapshots:
                session.execute(insert(EquitySnapshot), batch.snapshots)
            fill_ids: list[int] = []
            event_ids: list[int] = []
            if batch.fills:
                fill_ids = list(session.execute(
                    insert(Fill).returning(Fill.id, sort_by_parameter_order=True), batch.fills).scalars())
            if batch.events:
                event_ids = list(session.execute(
                    insert(RunEvent).returning(RunEvent.id, sort_by_parameter_order=True), batch.events).scalars())
            updates = _live_updates(runs, ticker, batch, fill_ids, event_ids, paused)
            session.commit()
        except IntegrityError:
            # (run_id, candle_ms) or a client order id already exists: another delivery of this
            # tick committed first. Nothing of ours is written; the tick is done.
            session.rollback()
            log.warning("%s %s: tick already recorded by another task; nothing written", market.key, candle_ms)
            return TickReport(market=market.key, candle_ms=candle_ms)
    updates.publish()  # after the commit: a browser never hears of a tick that was rolled back
    report.seconds = time.perf_counter() - started
    return report


def send_live_intents(order_ids: list[uuid.UUID]) -> None:
    """Send live intents one by one, in this process (no lock held): what the ``live.process_order``
    tasks do, for callers without a worker (the CLI, tests). One order's failure (exchange down, keys
    refused) never stops the others: the order keeps a state that reconciliation resolves, or its run
    is paused with the reason."""
    from tradefleet.execution.orders import process_order

    for order_id in order_ids:
        try:
            process_order(order_id, fresh=True)
        except Exception:  # noqa: BLE001 - the next reconciliation picks the order up
            log.exception("sending live order %s", order_id)


LIVE_CANDLES_PER_TICK = 20
"""A run catching up publishes its last this-many evaluated candles, not all of them."""


def _live_updates(runs: list[_RunRow], ticker: _RunTicker, batch: _Batch, fill_ids: list[int],
                  event_ids: list[int], paused: list[_RunRow]) -> Outbox:
    """The live updates of a tick (see :mod:`tradefleet.events`), built before the commit from the rows
    being written, published after it."""
    box = Outbox()
    fills: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    for row, fill_id in zip(batch.fills, fill_ids):
        fills[row["run_id"]].append(jsonable(FillPublic.model_validate({**row, "id": fill_id}).model_dump()))
    logs: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    for row, event_id in zip(batch.events, event_ids):
        logs[row["run_id"]].append(jsonable(RunEventPublic.model_validate({**row, "id": event_id}).model_dump()))
    last_snapshot = {s["run_id"]: s for s in batch.snapshots}
    for run in runs:
        # In the order a chart and a log want them: candles, then orders, their fills, the round trip,
        # the equity at the close, the run's log lines.
        rid = str(run.id)
        for i in list(run.stepped)[-LIVE_CANDLES_PER_TICK:]:
            box.add(run.owner_id, "candle", {
                "run_id": rid, "time_ms": int(ticker.times[i]), "open": float(ticker.open[i]),
                "high": float(ticker.high[i]), "low": float(ticker.low[i]), "close": float(ticker.close[i]),
                "volume": float(ticker.volume[i])})
        for order in ticker.touched_orders.get(run.id, {}).values():
            box.add(run.owner_id, "order", {"run_id": rid, "order": jsonable(OrderPublic.model_validate(order).model_dump())})
        for fill in fills.get(run.id, []):
            box.add(run.owner_id, "fill", {"run_id": rid, "fill": fill})
        for trade in {id(t): t for t in ticker.touched_trades.get(run.id, [])}.values():
            box.add(run.owner_id, "trade", {"run_id": rid, "trade": jsonable(TradePublic.model_validate(trade).model_dump())})
        s = last_snapshot.get(run.id)
        if s is not None:
            box.add(run.owner_id, "equity", {"run_id": rid, "candle_ms": s["candle_ms"], "equity": s["equity"],
                                             "cash": s["cash"], "position_amount": s["position_amount"],
                                             "price": s["price"]})
        for event in logs.get(run.id, []):
            box.add(run.owner_id, "log", {"run_id": rid, "event": event})
    for run in paused:
        box.add(run.owner_id, "status", {"run_id": str(run.id), "status": RunStatus.paused.value,
                                         "status_reason": run.status_reason})
    return box


def pause_runs(run_ids: list[uuid.UUID], reason: str, *, candle_ms: int | None = None) -> int:
    """Pause the running runs among ``run_ids`` with ``reason`` (one event each); returns how many."""
    batch = _Batch()
    with session_scope() as session:
        lock_for_write(session)
        runs = session.exec(select(Run).where(Run.id.in_(run_ids), Run.status == RunStatus.running)
                            .with_for_update()).all()
        for run in runs:
            pause_run(run, reason, batch, candle_ms=candle_ms)
        session.flush()
        box = Outbox()
        if batch.events:
            ids = list(session.execute(insert(RunEvent).returning(RunEvent.id, sort_by_parameter_order=True),
                                       batch.events).scalars())
            owner = {run.id: run.owner_id for run in runs}
            for row, event_id in zip(batch.events, ids):
                event = RunEventPublic.model_validate({**row, "id": event_id}).model_dump()
                box.add(owner[row["run_id"]], "log", {"run_id": str(row["run_id"]), "event": jsonable(event)})
        for run in runs:
            box.add(run.owner_id, "status", {"run_id": str(run.id), "status": run.status.value,
                                             "status_reason": run.status_reason})
        session.commit()
    box.publish()
    return len(runs)
