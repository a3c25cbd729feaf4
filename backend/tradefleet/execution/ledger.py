"""A run's round trip: the one implementation of its arithmetic, for paper fills, live fills, kills and backtests.

A round trip (a *trade* once closed) opens with the first buy from flat and closes when the position is back
to zero, or below what the market lets one sell (dust). Amounts are in the base currency, prices and fees in
the quote currency (a fee charged in base is valued at its fill's price):

* ``entry_price`` - the average price paid, weighted by the base each buy added; ``bought`` - the base the
  buys added (net of a fee taken in base); ``entry_fee`` - the buys' fees. So ``bought × entry_price +
  entry_fee`` is what the entry cost.
* ``exit_price`` - the average price of the sells, weighted by the base sold; ``sold``; ``exit_fee``.
* Realised PnL (:func:`round_trip_pnl`): ``bought × (exit − entry) − entry_fee − exit_fee − (bought − sold) ×
  exit``: the proceeds less what the entry cost less every fee; base bought but never sold (dust) counts as
  lost. The last term is exactly zero when everything was sold, so the usual case is bit-for-bit the textbook
  ``amount × (exit − entry) − fees`` (backtesting.py's ``Trade.pl`` less fees).
* PnL % (:func:`round_trip_pnl_pct`): ``pnl / (bought × entry + entry_fee) × 100``, the return on what the
  entry cost (freqtrade's ``calc_profit_ratio`` on the open trade value).
* Unrealised PnL of an open round trip at ``price`` (:func:`unrealised_pnl`): as if the open amount were
  sold at ``price`` without a fee.

Both functions take floats or numpy arrays (the backtest computes its trade list column-wise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tradefleet.models import Trade, TradeStatus


def round_trip_pnl(bought: Any, entry_price: Any, exit_price: Any, entry_fee: Any, exit_fee: Any,
                   sold: Any = None) -> Any:
    """Realised PnL, quote currency, net of every fee (module docstring). ``sold`` defaults to ``bought``."""
    pnl = bought * (exit_price - entry_price) - entry_fee - exit_fee
    if sold is None:
        return pnl
    return pnl - (bought - sold) * exit_price


def round_trip_pnl_pct(pnl: Any, bought: Any, entry_price: Any, entry_fee: Any) -> Any:
    """PnL over what the entry cost (fee included), percent."""
    return pnl / (bought * entry_price + entry_fee) * 100.0


def unrealised_pnl(open_amount: float, price: float, *, bought: float, entry_price: float, entry_fee: float,
                   sold: float = 0.0, exit_price: float | None = None, exit_fee: float = 0.0) -> float:
    """PnL of an open round trip if ``open_amount`` (base) were sold at ``price`` with no fee, quote currency:
    ``open_amount × price + sold × exit − bought × entry − entry_fee − exit_fee``."""
    if not sold and open_amount == bought:
        return bought * (price - entry_price) - entry_fee
    return open_amount * price + sold * (exit_price or 0.0) - bought * entry_price - entry_fee - exit_fee


@dataclass
class RoundTrip:
    """An open round trip (see the module docstring). ``amount`` is the base still held; ``high_water`` the
    highest price since entry (the trailing stop's mark); ``ref`` the caller's handle (a ``Trade`` row)."""

    entry_time_ms: int
    amount: float
    entry_price: float
    bought: float
    entry_fee: float
    high_water: float
    sold: float = 0.0
    exit_price: float | None = None
    exit_fee: float = 0.0
    ref: Any = None

    @classmethod
    def open(cls, time_ms: int, *, price: float, amount: float, fee: float, ref: Any = None) -> RoundTrip:
        """The round trip a first buy from flat opens: ``amount`` base received at ``price``, ``fee`` in quote."""
        return cls(entry_time_ms=time_ms, amount=amount, entry_price=price, bought=amount, entry_fee=fee,
                   high_water=price, ref=ref)

    @property
    def entry_cost(self) -> float:
        """What the base bought cost at the average entry price, without fees (quote)."""
        return self.bought * self.entry_price

    def add_buy(self, *, price: float, amount: float, fee: float) -> None:
        """A further buy: the entry price averages in, the fee adds up, the position grows by ``amount``."""
        self.entry_price = (self.entry_cost + amount * price) / (self.bought + amount)
        self.bought += amount
        self.amount += amount
        self.entry_fee += fee
        self.high_water = max(self.high_water, price)

    def add_sell(self, *, price: float, amount: float, fee: float, remaining: float) -> None:
        """A sell of ``amount`` base at ``price``; ``remaining`` is the position after it (the wallet's
        figure, which also takes a fee charged in base). The first sell's price is kept exactly."""
        if self.sold == 0:
            self.exit_price = price
        else:
            self.exit_price = (self.exit_price * self.sold + amount * price) / (self.sold + amount)
        self.sold += amount
        self.exit_fee += fee
        self.amount = remaining

    @property
    def pnl(self) -> float:
        """Realised PnL once closed (quote): :func:`round_trip_pnl` with what was sold."""
        sold = None if self.sold == self.bought else self.sold
        return round_trip_pnl(self.bought, self.entry_price, self.exit_price or 0.0, self.entry_fee, self.exit_fee,
                              sold)

    @property
    def pnl_pct(self) -> float:
        return round_trip_pnl_pct(self.pnl, self.bought, self.entry_price, self.entry_fee)

    # ---------------------------------------------------------------- the stored row
    @classmethod
    def from_trade(cls, trade: Trade, position_amount: float) -> RoundTrip:
        """The open round trip of a stored ``trade`` row; ``position_amount`` is the run's position, from
        which what was sold so far follows (the row keeps the base bought, not the base sold; with no exit
        price stored, nothing was sold)."""
        sold = max(0.0, trade.amount - position_amount) if trade.exit_price is not None else 0.0
        return cls(entry_time_ms=trade.entry_time_ms, amount=position_amount, entry_price=trade.entry_price,
                   bought=trade.amount, entry_fee=trade.entry_fee,
                   high_water=trade.high_water_mark or trade.entry_price, sold=sold,
                   exit_price=trade.exit_price if sold else None, exit_fee=trade.exit_fee or 0.0, ref=trade)

    def new_trade(self, run_id: Any) -> Trade:
        """A new open ``Trade`` row for this round trip (also set as ``ref``)."""
        self.ref = Trade(run_id=run_id, status=TradeStatus.open, amount=self.bought,
                         entry_time_ms=self.entry_time_ms, entry_price=self.entry_price, entry_fee=self.entry_fee,
                         high_water_mark=self.high_water)
        return self.ref

    def store(self) -> Trade:
        """Copy the figures into ``ref`` (the ``Trade`` row) and return it."""
        trade = self.ref
        trade.amount, trade.entry_price, trade.entry_fee = self.bought, self.entry_price, self.entry_fee
        trade.exit_fee = self.exit_fee if self.sold else None
        trade.exit_price = self.exit_price if self.sold else None
        trade.high_water_mark = self.high_water
        return trade

    def close(self, *, time_ms: int, reason: str) -> Trade:
        """Store the figures and mark ``ref`` closed at ``time_ms`` with ``reason``, its PnL and PnL %."""
        trade = self.store()
        trade.status = TradeStatus.closed
        trade.exit_time_ms, trade.exit_reason = time_ms, reason
        trade.pnl, trade.pnl_pct = self.pnl, self.pnl_pct
        return trade


__all__ = ["RoundTrip", "round_trip_pnl", "round_trip_pnl_pct", "unrealised_pnl"]
