"""The paper broker: simulated fills on real prices, a virtual wallet per run, no keys.

Fill model (the same as the backtest's, so paper and backtest agree):

- A market order decided on the close of candle ``t`` fills at the **open of candle t+1**, the next
  price available after the decision (backtesting.py's default, ``trade_on_close=False``).
- The fee is the market's **taker** rate from ccxt (``market["taker"]``), charged in the quote
  currency on the fill's cost: ``fee = amount * price * taker``.
- A buy is sized in the quote currency when it is decided (``position_size`` of the available
  balance, Binance's ``quoteOrderQty``) and spends that budget, fee included, at the fill price:
  ``amount = floor_to_step(budget / (price * (1 + taker)))``.
- A sell closes the whole position.
- An order below the market's minimum amount or minimum cost is rejected, not filled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def floor_to_step(value: float, step: float | None) -> float:
    """Round ``value`` down to a multiple of ``step`` (the exchange's amount precision)."""
    if not step:
        return value
    units = math.floor(value / step + 1e-9)
    decimals = max(0, -int(math.floor(math.log10(step)))) if step < 1 else 0
    return round(units * step, decimals + 2)


@dataclass
class Wallet:
    """A run's virtual wallet: ``cash`` in the quote currency, ``position_amount`` in the base.
    The average entry price belongs to the round trip (:class:`~tradefleet.execution.account.Position`)."""

    cash: float
    position_amount: float = 0.0
    realised_pnl: float = 0.0
    fees_paid: float = 0.0

    def equity(self, price: float) -> float:
        """Cash plus the position valued at ``price`` (quote currency)."""
        return self.cash + self.position_amount * price


@dataclass(frozen=True)
class PaperFill:
    side: str
    price: float
    amount: float
    cost: float
    fee: float


@dataclass(frozen=True)
class MarketRules:
    """What the broker needs of a market: fee rate and precision (from the ccxt market catalog)."""

    taker: float
    amount_step: float | None = None
    min_amount: float | None = None
    min_cost: float | None = None


class OrderRejected(Exception):
    """The order cannot be filled (too small for the market, or nothing to sell)."""


class PaperBroker:
    """Fills market orders against a :class:`Wallet` with :class:`MarketRules`."""

    def __init__(self, rules: MarketRules) -> None:
        self.rules = rules

    def buy_amount(self, budget: float, price: float) -> float:
        """The base amount that ``budget`` (quote currency, fee included) buys at ``price``."""
        return floor_to_step(budget / (price * (1.0 + self.rules.taker)), self.rules.amount_step)

    def _check_minimums(self, amount: float, price: float) -> None:
        if amount <= 0:
            raise OrderRejected("amount rounds to zero at the market's precision")
        if self.rules.min_amount and amount < self.rules.min_amount:
            raise OrderRejected(f"amount {amount} is below the market minimum {self.rules.min_amount}")
        if self.rules.min_cost and amount * price < self.rules.min_cost:
            raise OrderRejected(
                f"order value {amount * price:.8g} is below the market minimum {self.rules.min_cost}"
            )

    def fill_buy(self, wallet: Wallet, price: float, budget: float) -> PaperFill:
        """Spend ``budget`` (quote, fee included, at most the cash) at ``price``; updates the wallet.
        Raises :class:`OrderRejected`."""
        amount = self.buy_amount(min(budget, wallet.cash), price)
        self._check_minimums(amount, price)
        cost = amount * price
        fee = cost * self.rules.taker
        wallet.cash -= cost + fee
        wallet.position_amount += amount
        wallet.fees_paid += fee
        return PaperFill("buy", price, amount, cost, fee)

    def fill_sell(self, wallet: Wallet, price: float, amount: float | None = None) -> PaperFill:
        """Sell ``amount`` (default: the whole position) at ``price``; updates cash and position.
        Realised PnL is booked per trade by the caller (it needs the entry fee)."""
        amount = wallet.position_amount if amount is None else min(amount, wallet.position_amount)
        if amount <= 0:
            raise OrderRejected("no position to sell")
        cost = amount * price
        fee = cost * self.rules.taker
        wallet.cash += cost - fee
        wallet.position_amount -= amount
        wallet.fees_paid += fee
        if wallet.position_amount <= (self.rules.amount_step or 0) * 1e-6:
            wallet.position_amount = 0.0
        return PaperFill("sell", price, amount, cost, fee)
