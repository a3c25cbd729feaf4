"""Evaluating every due run of one market on its newly closed candle(s).

One call handles one batch of runs of one market. It fetches the candle window once (cached by
market and candle time), then for each run, for each candle the run has not seen yet (oldest
first): fills the run's pending orders at that candle's open, applies the stoploss on its low,
reads the strategy's signals for that candle, writes order intents, and snapshots equity at the
close. All of a batch's writes commit in one transaction.

Idempotence: each run row is locked (``SELECT ... FOR UPDATE``) and re-read; candles at or before
its ``last_candle_ms`` are skipped, and ``(run_id, candle_ms)`` is unique in ``equity_snapshot``,
so a task delivered twice changes nothing the second time.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from tradefleet.config import get_settings
from tradefleet.db import lock_for_write, session_scope
from tradefleet.execution.paper import MarketRules, OrderRejected, PaperBroker, Wallet
from tradefleet.market.candles import Market, get_candles
from tradefleet.models import (
    EquitySnapshot,
    EventLevel,
    ExchangeMarket,
    Fill,
    Order,
    OrderSide,
    OrderStatus,
    OrderType,
    Run,
    RunEvent,
    RunStatus,
    Trade,
    TradeStatus,
)
from tradefleet.models._types import utcnow
from tradefleet.strategy.base import Strategy
from tradefleet.strategy.guard import StrategyError, call_guarded, compute_signals, signal_at
from tradefleet.strategy.params import ParamError
from tradefleet.strategy.registry import UnknownStrategy, get_registry

log = logging.getLogger(__name__)

_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(number: int, width: int) -> str:
    digits = []
    while number:
        number, rest = divmod(number, 36)
        digits.append(_B36[rest])
    return "".join(reversed(digits)).rjust(width, "0")


_REASON_TAGS = {"enter_long": "e", "exit_long": "x", "stoploss": "s"}


def client_order_id(run_id: uuid.UUID, signal_candle_ms: int, reason: str) -> str:
    """The deterministic client order id of a run's decision on one candle: 36 characters, within
    Binance's ``newClientOrderId`` rule ``^[.A-Z:/a-z0-9_-]{1,36}$``. The same decision always
    gets the same id, which is what lets the order manager find an order before re-sending it."""
    tag = _REASON_TAGS.get(reason, "o")
    return f"tf{_base36(run_id.int, 25)}{_base36(signal_candle_ms, 8)}{tag}"


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


@dataclass
class _Batch:
    """Rows collected for one bulk write."""

    snapshots: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    fills: list[dict[str, Any]] = field(default_factory=list)

    def event(self, run: Run, kind: str, message: str, *, level: EventLevel = EventLevel.info,
              candle_ms: int | None = None, data: dict[str, Any] | None = None) -> None:
        self.events.append(dict(run_id=run.id, created_at=utcnow(), candle_ms=candle_ms, level=level.value,
                                kind=kind, message=message, data=data or {}))


def _rules(info: ExchangeMarket) -> MarketRules:
    return MarketRules(taker=info.taker, amount_step=info.amount_step, min_amount=info.min_amount,
                       min_cost=info.min_cost)


def pause_run(run: Run, reason: str, batch: _Batch, *, candle_ms: int | None = None) -> None:
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
        self.info = info
        self.broker = PaperBroker(_rules(info))
        self.batch = batch
        self.report = report
        self.settings = get_settings()
        self.registry = get_registry()
        self._signals: dict[tuple[str, str, int], pd.DataFrame] = {}

    # ------------------------------------------------------------------ strategy
    def _strategy(self, run: Run) -> Strategy:
        try:
            klass = self.registry.get(run.strategy)
        except UnknownStrategy:
            raise StrategyError(f"strategy {run.strategy!r} is not available (file removed or broken)") from None
        try:
            params = call_guarded(klass.validate_params, run.params, timeout_s=self.settings.STRATEGY_TIMEOUT_S,
                                  what=f"{run.strategy} parameter check")
        except StrategyError as exc:
            if isinstance(exc.__cause__, ParamError):
                raise StrategyError(f"parameters no longer valid for {run.strategy}: {exc.__cause__}") from None
            raise
        return klass(params, logger=logging.getLogger(f"tradefleet.strategy.{run.strategy}"))

    def _signals_for(self, strategy: Strategy, run: Run, start: int) -> pd.DataFrame:
        # Runs of the same strategy and parameters on this market share one computation.
        key = (run.strategy, json.dumps(strategy.params, sort_keys=True), start)
        if key not in self._signals:
            self._signals[key] = compute_signals(strategy, self.candles.iloc[start:],
                                                 timeout_s=self.settings.STRATEGY_TIMEOUT_S)
        return self._signals[key]

    # ------------------------------------------------------------------ one run
    def tick(self, run: Run, pending: list[Order], trade: Trade | None) -> None:
        n = len(self.times)
        last = run.last_candle_ms
        if last is None:
            first = n - 1
        else:
            first = int(np.searchsorted(self.times, last, side="right"))
            if first >= n:
                return  # already evaluated: a redelivered task does nothing
            behind = n - first
            if first == 0 and self.times[0] > last + self.market.timeframe_ms:
                behind = int((self.times[-1] - last) // self.market.timeframe_ms)
            limit = self.settings.ENGINE_MAX_CATCHUP_CANDLES
            if behind > limit or (first == 0 and self.times[0] > last + self.market.timeframe_ms):
                skipped = behind - min(limit, n)
                first = max(0, n - min(limit, n))
                self.batch.event(run, "skipped", f"run was {behind} candles behind; skipped {skipped} "
                                 "candles to catch up", level=EventLevel.warning, candle_ms=int(self.times[-1]))

        strategy = self._strategy(run)
        need = int(call_guarded(strategy.required_candles, timeout_s=self.settings.STRATEGY_TIMEOUT_S,
                                what=f"{run.strategy}.startup_candles"))
        start = max(0, first - (need - 1))
        signals = self._signals_for(strategy, run, start)
        # Read (and check) every signal this tick needs before changing anything, so a strategy
        # error leaves the run exactly as it was.
        decisions: dict[int, tuple[bool, bool]] = {}
        for i in range(max(first, start + need - 1), n):
            decisions[i] = (signal_at(signals, i - start, "enter_long", strategy.name),
                            signal_at(signals, i - start, "exit_long", strategy.name))
        wallet = Wallet(cash=run.cash, position_amount=run.position_amount,
                        position_entry_price=run.position_entry_price, realised_pnl=run.realised_pnl,
                        fees_paid=run.fees_paid)
        for i in range(first, n):
            candle_ms = int(self.times[i])
            trade = self._fill_pending(run, wallet, pending, trade, i)
            pending = [o for o in pending if o.status == OrderStatus.open]
            if trade is not None and strategy.stoploss is not None and wallet.position_amount > 0:
                trade = self._check_stoploss(run, wallet, strategy.stoploss, trade, i)
            if i in decisions:
                self._decide(run, strategy, decisions[i], wallet, pending, i)
            self.batch.snapshots.append(dict(
                run_id=run.id, candle_ms=candle_ms, cash=wallet.cash, position_amount=wallet.position_amount,
                price=float(self.close[i]), equity=wallet.equity(float(self.close[i])), evaluated_at=utcnow()))
            self.report.ticks += 1
        run.cash, run.position_amount = wallet.cash, wallet.position_amount
        run.position_entry_price, run.realised_pnl, run.fees_paid = (
            wallet.position_entry_price, wallet.realised_pnl, wallet.fees_paid)
        run.last_candle_ms = int(self.times[-1])
        run.last_price = float(self.close[-1])
        run.last_tick_at = utcnow()

    def _fill_pending(self, run: Run, wallet: Wallet, pending: list[Order], trade: Trade | None,
                      i: int) -> Trade | None:
        candle_ms = int(self.times[i])
        price = float(self.open[i])
        for order in pending:
            if order.status != OrderStatus.open or order.signal_candle_ms >= candle_ms:
                continue
            try:
                if order.side == OrderSide.buy:
                    fill = self.broker.fill_buy(wallet, price, order.quote_amount or wallet.cash)
                else:
                    fill = self.broker.fill_sell(wallet, price)
            except OrderRejected as exc:
                order.status = OrderStatus.rejected
                order.status_reason = str(exc)
                order.updated_at = utcnow()
                self.batch.event(run, "order_rejected", f"{order.side.value} order rejected: {exc}",
                                 level=EventLevel.warning, candle_ms=candle_ms)
                continue
            trade = self._record_fill(run, wallet, order, fill, trade, candle_ms, order.reason)
        return trade

    def _record_fill(self, run: Run, wallet: Wallet, order: Order, fill, trade: Trade | None,
                     candle_ms: int, reason: str) -> Trade | None:
        order.status = OrderStatus.filled
        order.amount = fill.amount
        order.filled, order.average, order.cost, order.fee = fill.amount, fill.price, fill.cost, fill.fee
        order.fee_currency = self.info.quote
        order.updated_at = utcnow()
        self.batch.fills.append(dict(order_id=order.id, run_id=run.id, side=order.side.value, time_ms=candle_ms,
                                     price=fill.price, amount=fill.amount, cost=fill.cost, fee=fill.fee,
                                     fee_currency=self.info.quote, created_at=utcnow()))
        self.report.fills += 1
        verb = "bought" if fill.side == "buy" else "sold"
        self.batch.event(run, "fill", f"{verb} {fill.amount:g} {self.info.base} at {fill.price:g} "
                         f"{self.info.quote} (fee {fill.fee:.6g} {self.info.quote})", candle_ms=candle_ms,
                         data={"order_id": str(order.id), "side": fill.side, "price": fill.price,
                               "amount": fill.amount, "fee": fill.fee})
        if fill.side == "buy":
            trade = Trade(run_id=run.id, status=TradeStatus.open, amount=fill.amount, entry_time_ms=candle_ms,
                          entry_price=fill.price, entry_fee=fill.fee)
            self.session.add(trade)
            return trade
        if trade is not None:
            trade.status = TradeStatus.closed
            trade.exit_time_ms, trade.exit_price, trade.exit_fee, trade.exit_reason = (
                candle_ms, fill.price, fill.fee, reason)
            trade.pnl = trade.amount * (fill.price - trade.entry_price) - trade.entry_fee - fill.fee
            trade.pnl_pct = trade.pnl / (trade.amount * trade.entry_price + trade.entry_fee) * 100.0
            wallet.realised_pnl += trade.pnl
        return None

    def _check_stoploss(self, run: Run, wallet: Wallet, stoploss: float, trade: Trade, i: int) -> Trade | None:
        stop = trade.entry_price * (1.0 + stoploss)
        if self.low[i] > stop:
            return trade
        # A gap below the stop fills at the open (a stop-market order triggers at the first price).
        price = min(float(self.open[i]), stop)
        candle_ms = int(self.times[i])
        order = self._new_order(run, OrderSide.sell, candle_ms, trade.amount, "stoploss")
        fill = self.broker.fill_sell(wallet, price)
        return self._record_fill(run, wallet, order, fill, trade, candle_ms, "stoploss")

    def _new_order(self, run: Run, side: OrderSide, signal_ms: int, amount: float, reason: str,
                   *, quote_amount: float | None = None) -> Order:
        order = Order(run_id=run.id, client_order_id=client_order_id(run.id, signal_ms, reason),
                      symbol=run.symbol, side=side, type=OrderType.market, amount=amount,
                      quote_amount=quote_amount,
                      status=OrderStatus.open, reason=reason, signal_candle_ms=signal_ms)
        self.session.add(order)
        self.report.orders += 1
        return order

    def _decide(self, run: Run, strategy: Strategy, decision: tuple[bool, bool], wallet: Wallet,
                pending: list[Order], i: int) -> None:
        candle_ms = int(self.times[i])
        enter, exit_ = decision
        if pending:
            return  # one decision at a time: wait for the pending order to fill
        if wallet.position_amount > 0 and exit_:
            pending.append(self._new_order(run, OrderSide.sell, candle_ms, wallet.position_amount, "exit_long"))
        elif wallet.position_amount == 0 and enter and not exit_:
            budget = wallet.cash * strategy.position_size
            estimate = self.broker.buy_amount(budget, float(self.close[i]))
            pending.append(self._new_order(run, OrderSide.buy, candle_ms, estimate, "enter_long",
                                           quote_amount=budget))


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
    batch = _Batch()
    with session_scope() as session:
        lock_for_write(session)
        info = session.get(ExchangeMarket, (market.exchange, market.symbol))
        if info is None:
            raise LookupError(f"market {market.exchange} {market.symbol} is not in the catalog")
        runs = session.exec(
            select(Run).where(Run.id.in_(run_ids), Run.status == RunStatus.running)
            .order_by(Run.id).with_for_update()
        ).all()
        ids = [run.id for run in runs]
        pending: dict[uuid.UUID, list[Order]] = defaultdict(list)
        for order in session.exec(select(Order).where(Order.run_id.in_(ids), Order.status == OrderStatus.open)
                                  .order_by(Order.created_at)):
            pending[order.run_id].append(order)
        trades = {t.run_id: t for t in session.exec(
            select(Trade).where(Trade.run_id.in_(ids), Trade.status == TradeStatus.open))}
        ticker = _RunTicker(session, market, candles, info, batch, report)
        for run in runs:
            report.runs += 1
            try:
                ticker.tick(run, pending[run.id], trades.get(run.id))
            except StrategyError as exc:
                report.paused += 1
                pause_run(run, str(exc), batch, candle_ms=candle_ms)
        try:
            session.flush()
            if batch.snapshots:
                session.execute(insert(EquitySnapshot), batch.snapshots)
            if batch.fills:
                session.execute(insert(Fill), batch.fills)
            if batch.events:
                session.execute(insert(RunEvent), batch.events)
            session.commit()
        except IntegrityError:
            # (run_id, candle_ms) or a client order id already exists: another delivery of this
            # tick committed first. Nothing of ours is written; the tick is done.
            session.rollback()
            log.warning("%s %s: tick already recorded by another task; nothing written", market.key, candle_ms)
            return TickReport(market=market.key, candle_ms=candle_ms)
    report.seconds = time.perf_counter() - started
    return report


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
        if batch.events:
            session.execute(insert(RunEvent), batch.events)
        session.commit()
    return len(runs)
