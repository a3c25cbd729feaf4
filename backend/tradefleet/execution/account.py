"""An account stepped candle by candle: the one implementation of the per-candle decision and fill rules.

The fleet engine steps one for every paper run on each new closed candle (its fills are simulated); a live
run takes its decisions on one (signals, protective exits, ``on_candle``) and sends them as real orders; the
backtest steps one for strategies with a stateful ``on_candle`` hook, and its vectorised path for signal
strategies is tested to give exactly the same trades. The rules, per candle ``i`` (see STRATEGIES.md, "The fill
model"; the convention is backtesting.py's ``trade_on_close=False``):

1. :meth:`CandleAccount.open_candle`: orders decided at candle ``i-1``'s close fill at ``open[i]``, in
   the order they were placed (:class:`~tradefleet.execution.paper.PaperBroker`: taker fee in quote,
   buys spend their quote budget fee included, amounts floored to the market's step).
2. :meth:`CandleAccount.check_protective_exits`: exits that a resting order would have made during candle ``i``,
   for a position held during it (also one entered at ``open[i]``), with average entry ``E``:
   stop = max(``E × (1 + stoploss)``, trailing level ``HWM × (1 − trailing_stop)``) where the
   high-water mark ``HWM`` = max(``E``, highs of the candles before ``i`` since entry) (known at the
   candle's open: no intrabar look-ahead); take-profit target ``T = E × (1 + take_profit)``.
   If ``open ≤ stop``: exit at the open; elif ``open ≥ T``: exit at the open; elif ``low ≤ stop``:
   exit at the stop; elif ``high ≥ T``: exit at ``T``. A stop wins when both could have been hit
   inside the candle (the order of prices inside a candle is unknown: assume the worse). Then
   ``HWM`` takes ``high[i]``.
3. :meth:`CandleAccount.close_candle`: with no order pending, ``exit_long`` sells the whole position
   and ``enter_long`` (without ``exit_long``) buys with ``position_size`` of the cash; a position
   closed in step 2 may be re-entered here. A stateful strategy may then place its own orders
   (:meth:`buy`, :meth:`sell`).
4. Equity at the close: ``cash + position × close``.

A round trip (:class:`~tradefleet.execution.ledger.RoundTrip`, whose module owns its arithmetic) opens with
the first buy from flat and closes when the position returns to zero; several buys average the entry,
partial sells average the exit, and its PnL is ``bought × (average exit − average entry) − all fees``
(quote currency).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tradefleet.execution.ledger import RoundTrip
from tradefleet.execution.paper import MarketRules, OrderRejected, PaperBroker, PaperFill, Wallet
from tradefleet.models.order import OrderReason


@dataclass
class PendingOrder:
    """A market order decided at a candle's close, filled at the next candle's open (or at once by
    :meth:`CandleAccount.fill_now`, or by a protective exit inside the candle).

    ``quote_amount`` (buys): the budget, fee included. ``amount`` (sells): base amount, ``None`` for
    the whole position. ``ref`` is the caller's handle (the engine's ``Order`` row)."""

    side: str
    reason: OrderReason
    signal_ms: int
    quote_amount: float | None = None
    amount: float | None = None
    ref: Any = None


@dataclass
class FillEvent:
    order: PendingOrder
    fill: PaperFill
    time_ms: int


@dataclass
class ClosedTrade:
    round_trip: RoundTrip
    exit_time_ms: int
    exit_price: float
    reason: OrderReason
    pnl: float
    pnl_pct: float


@dataclass
class StepEvents:
    """What happened on the candles stepped since the last :meth:`CandleAccount.take_events`."""

    fills: list[FillEvent] = field(default_factory=list)
    opened: list[RoundTrip] = field(default_factory=list)
    closed: list[ClosedTrade] = field(default_factory=list)
    placed: list[PendingOrder] = field(default_factory=list)
    """Orders decided on these candles, in order (pending ones, protective exits, ``fill_now``'s)."""
    rejected: list[tuple[PendingOrder, str]] = field(default_factory=list)


class CandleAccount:
    """A wallet, its open round trip and its pending orders, with the rules above. Paper runs and
    backtests fill on it; a live run only reads the orders it places (:attr:`StepEvents.placed`)."""

    def __init__(self, rules: MarketRules, *, wallet: Wallet, position: RoundTrip | None = None,
                 pending: list[PendingOrder] | None = None, stoploss: float | None = None,
                 take_profit: float | None = None, trailing_stop: float | None = None) -> None:
        self.broker = PaperBroker(rules)
        self.wallet = wallet
        self.position = position
        self.pending: list[PendingOrder] = list(pending or [])
        self.stoploss, self.take_profit, self.trailing_stop = stoploss, take_profit, trailing_stop
        self.events = StepEvents()

    def take_events(self) -> StepEvents:
        events, self.events = self.events, StepEvents()
        return events

    # ------------------------------------------------------------------ fills
    def _apply(self, order: PendingOrder, price: float, time_ms: int) -> None:
        wallet = self.wallet
        try:
            if order.side == "buy":
                fill = self.broker.fill_buy(wallet, price, order.quote_amount or wallet.cash)
            else:
                fill = self.broker.fill_sell(wallet, price, order.amount)
        except OrderRejected as exc:
            self.events.rejected.append((order, str(exc)))
            return
        self.events.fills.append(FillEvent(order, fill, time_ms))
        p = self.position
        if fill.side == "buy":
            if p is None:
                self.position = RoundTrip.open(time_ms, price=fill.price, amount=fill.amount, fee=fill.fee)
                self.events.opened.append(self.position)
            else:
                p.add_buy(price=fill.price, amount=fill.amount, fee=fill.fee)
            return
        if p is None:  # a sell without a round trip (cannot happen: the broker rejects it)
            return
        p.add_sell(price=fill.price, amount=fill.amount, fee=fill.fee, remaining=wallet.position_amount)
        if wallet.position_amount == 0:
            pnl = p.pnl
            wallet.realised_pnl += pnl
            self.events.closed.append(ClosedTrade(p, time_ms, p.exit_price, order.reason, pnl, p.pnl_pct))
            self.position = None

    def fill_now(self, order: PendingOrder, price: float, time_ms: int) -> None:
        """Fill ``order`` at ``price`` at once, outside the candle rules (a kill's sell at the last price);
        its events are recorded like any other fill's."""
        self.events.placed.append(order)
        self._apply(order, price, time_ms)

    def open_candle(self, time_ms: int, open_: float) -> None:
        """Step 1: fill the pending orders at this candle's open."""
        pending, self.pending = self.pending, []
        for order in pending:
            if order.signal_ms < time_ms:
                self._apply(order, open_, time_ms)
            else:
                self.pending.append(order)

    def check_protective_exits(self, time_ms: int, open_: float, high: float, low: float) -> None:
        """Step 2: stoploss, trailing stop and take-profit on this candle."""
        p = self.position
        if p is None:
            return
        stop, reason = None, OrderReason.stoploss
        if self.stoploss is not None:
            stop = p.entry_price * (1.0 + self.stoploss)
        if self.trailing_stop is not None:
            trail = p.high_water * (1.0 - self.trailing_stop)
            if stop is None or trail > stop:
                stop, reason = trail, OrderReason.trailing_stop
        target = p.entry_price * (1.0 + self.take_profit) if self.take_profit is not None else None
        price = None
        if stop is not None and open_ <= stop:
            price = open_
        elif target is not None and open_ >= target:
            price, reason = open_, OrderReason.take_profit
        elif stop is not None and low <= stop:
            price = stop
        elif target is not None and high >= target:
            price, reason = target, OrderReason.take_profit
        if price is None:
            p.high_water = max(p.high_water, high)
            return
        order = PendingOrder("sell", reason, time_ms)
        self.events.placed.append(order)
        self._apply(order, price, time_ms)

    def close_candle(self, time_ms: int, close: float, *, enter: bool, exit_: bool, size: float) -> None:
        """Step 3: act on the candle's signals when no order is pending."""
        if self.pending:
            return
        if self.wallet.position_amount > 0 and exit_:
            self.sell(time_ms, reason=OrderReason.exit_long)
        elif self.wallet.position_amount == 0 and enter and not exit_:
            self.buy(time_ms, quote_amount=self.wallet.cash * size, reason=OrderReason.enter_long)

    # ------------------------------------------------------------------ orders of a stateful strategy
    def buy(self, time_ms: int, *, quote_amount: float, reason: OrderReason = OrderReason.buy) -> PendingOrder:
        """Place a market buy spending ``quote_amount`` (fee included) at the next open."""
        order = PendingOrder("buy", reason, time_ms, quote_amount=quote_amount)
        self.pending.append(order)
        self.events.placed.append(order)
        return order

    def sell(self, time_ms: int, *, amount: float | None = None,
             reason: OrderReason = OrderReason.sell) -> PendingOrder:
        """Place a market sell of ``amount`` base (``None``: the whole position) at the next open."""
        order = PendingOrder("sell", reason, time_ms, amount=amount)
        self.pending.append(order)
        self.events.placed.append(order)
        return order

    def equity(self, price: float) -> float:
        return self.wallet.equity(price)
