"""Order matching of the simulator's private side: orders and fills against the replayed candles.

Rules (all times are sim-clock ms, :class:`~tradefleet.sim.clock.SimClock`):

* **Current price** of a market (:func:`current_price`): the *open* of the candle forming at ``now``
  in the market's finest recorded interval; when no candle is forming there (a gap, or before/after
  the recording) the close of the latest closed candle. ``None`` before the first candle (orders
  are then rejected with -1013 "Market is closed.").
* **MARKET** orders fill at once, completely, at the current price (one fill, taker).
  ``quoteOrderQty`` gives the quantity ``floor(quoteOrderQty / price)`` on the lot grid.
* **LIMIT** orders (``timeInForce`` GTC/IOC/FOK) that are marketable when placed (a buy at or above the
  current price, a sell at or below) fill at once at the current price as taker. Otherwise GTC
  orders rest (IOC/FOK expire, ``LIMIT_MAKER`` rests or is rejected -2010 when it would take).
  A resting order fills as maker at its own price against each later candle of the finest interval
  (opening at/after the order was placed, closed at ``now``) whose range touches it (buy: low <= price;
  sell: high >= price), at most :data:`PARTICIPATION` of that candle's volume per candle (rounded down
  to the lot step), so a large order fills in parts over several candles (status PARTIALLY_FILLED).
  Matching is lazy: :func:`match_open_orders` runs on every request of the account.
* **Fees**: Binance's regular 0.1% maker and taker fee, charged in the received asset (the base asset
  on a buy, the quote asset on a sell), as Binance does without BNB fee discount; rounded to 8 decimals.
* **Balances**: a resting buy locks ``price * quantity`` of the quote asset, a resting sell locks the
  quantity of the base asset; fills consume the lock, cancels and expiries release the rest.
* **Filters** from the simulator's ``exchangeInfo`` (:mod:`tradefleet.sim.markets`): PRICE_FILTER
  (tick grid, min/max price), LOT_SIZE (step grid, min/max qty; MARKET_LOT_SIZE max for market orders)
  and NOTIONAL (price * quantity >= minNotional, market orders at the current price) -- failures
  answer -1013 "Filter failure: <FILTER>" like Binance.

The functions here mutate an :class:`~tradefleet.sim.accounts.SimAccount`; callers hold its lock.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any

import numpy as np

from tradefleet.sim.errors import BinanceAPIError
from tradefleet.sim.markets import MAX_PRICE, SymbolRules
from tradefleet.sim.orders import Q8, SimFill, SimOrder

if TYPE_CHECKING:
    from tradefleet.sim.accounts import SimAccount
    from tradefleet.sim.data import MarketData

MAKER_FEE = Decimal("0.001")
TAKER_FEE = Decimal("0.001")
PARTICIPATION = Decimal("0.25")
"""Largest share of one candle's volume a resting limit order can fill against that candle."""

def filter_failure(name: str) -> BinanceAPIError:
    """-1013 "Filter failure: NAME" (ccxt: LOT_SIZE / PRICE_FILTER -> InvalidOrder, others BadRequest)."""
    return BinanceAPIError(-1013, f"Filter failure: {name}")


def insufficient_balance() -> BinanceAPIError:
    """-2010, ccxt ``InsufficientFunds`` (matched on the message)."""
    return BinanceAPIError(-2010, "Account has insufficient balance for requested action.")


def current_price(data: MarketData, symbol: str, now_ms: int) -> Decimal | None:
    """The price market orders fill at (see the module docstring), or ``None`` before any candle."""
    by_interval = data.series.get(symbol, {})
    if by_interval:
        finest = next(iter(by_interval.values()))
        i = int(np.searchsorted(finest.open_time, now_ms, side="right")) - 1
        if i >= 0 and now_ms < int(finest.open_time[i]) + finest.interval_ms:
            return Decimal(repr(float(finest.ohlcv[i, 0])))
    found = data.latest_closed(symbol, now_ms)
    if found is None:
        return None
    series, row = found
    return Decimal(repr(float(series.ohlcv[row, 3])))


def check_price(rules: SymbolRules, price: Decimal) -> None:
    """PRICE_FILTER: ``minPrice <= price <= maxPrice`` and on the tick grid."""
    if price < rules.tick or price > Decimal(MAX_PRICE) or price % rules.tick != 0:
        raise filter_failure("PRICE_FILTER")


def check_qty(rules: SymbolRules, qty: Decimal, *, market: bool) -> None:
    """LOT_SIZE (and MARKET_LOT_SIZE's max for market orders)."""
    max_qty = Decimal(rules.market_max_qty if market else rules.max_qty)
    if qty < rules.step or qty > Decimal(rules.max_qty) or qty % rules.step != 0:
        raise filter_failure("LOT_SIZE")
    if qty > max_qty:
        raise filter_failure("MARKET_LOT_SIZE")


def check_notional(rules: SymbolRules, price: Decimal, qty: Decimal) -> None:
    """NOTIONAL: ``price * qty >= minNotional``."""
    if price * qty < Decimal(rules.min_notional):
        raise filter_failure("NOTIONAL")


def _fill(account: SimAccount, rules: SymbolRules, order: SimOrder, qty: Decimal, price: Decimal, *,
          maker: bool, time_ms: int, trade_id: int) -> SimFill:
    """Book one fill of ``order``: move balances, charge the fee, update the order."""
    quote_qty = (qty * price).quantize(Q8, rounding=ROUND_DOWN)
    rate = MAKER_FEE if maker else TAKER_FEE
    base, quote = account.balance(rules.base), account.balance(rules.quote)
    if order.side == "BUY":
        fee = (qty * rate).quantize(Q8, rounding=ROUND_DOWN)
        if order.locked > 0:  # a resting buy pays from its lock (at its own price, never more)
            used = min(order.locked, quote_qty)
            order.locked -= used
            quote.locked -= used
            quote.free -= quote_qty - used
        else:
            quote.free -= quote_qty
        base.free += qty - fee
        asset = rules.base
    else:
        fee = (quote_qty * rate).quantize(Q8, rounding=ROUND_DOWN)
        if order.locked > 0:
            used = min(order.locked, qty)
            order.locked -= used
            base.locked -= used
            base.free -= qty - used
        else:
            base.free -= qty
        quote.free += quote_qty - fee
        asset = rules.quote
    fill = SimFill(trade_id=trade_id, order_id=order.order_id, symbol=order.symbol, price=price, qty=qty,
                quote_qty=quote_qty, commission=fee, commission_asset=asset, time=time_ms,
                is_buyer=order.side == "BUY", is_maker=maker)
    order.fills.append(fill)
    account.trades.append(fill)
    order.executed_qty += qty
    order.cum_quote += quote_qty
    order.update_time = time_ms
    order.status = "FILLED" if order.executed_qty >= order.orig_qty else "PARTIALLY_FILLED"
    if order.status == "FILLED":
        release(account, rules, order)
    return fill


def release(account: SimAccount, rules: SymbolRules, order: SimOrder) -> None:
    """Give back what ``order`` still has locked (on fill, cancel or expiry)."""
    if order.locked > 0:
        bal = account.balance(rules.quote if order.side == "BUY" else rules.base)
        bal.locked -= order.locked
        bal.free += order.locked
        order.locked = Decimal(0)


def place(account: SimAccount, rules: SymbolRules, data: MarketData, order: SimOrder, *, now_ms: int,
          next_trade_id: Any) -> None:
    """Validate ``order`` against the filters and the balances and execute it (see module docstring).

    ``order.orig_qty`` is 0 for a market order given by ``orig_quote_qty``. ``next_trade_id()``
    returns a fresh trade id. Raises :class:`BinanceAPIError` (nothing changed) on a rejection;
    on success the order is filled, resting or expired and registered in ``account``.
    """
    price_now = current_price(data, order.symbol, now_ms)
    if price_now is None:
        raise BinanceAPIError(-1013, "Market is closed.")
    market = order.type == "MARKET"
    if market:
        if order.orig_qty == 0:  # quoteOrderQty
            order.orig_qty = (order.orig_quote_qty / price_now).quantize(rules.step, rounding=ROUND_DOWN)
        check_qty(rules, order.orig_qty, market=True)
        check_notional(rules, price_now, order.orig_qty)
    else:
        check_price(rules, order.price)
        check_qty(rules, order.orig_qty, market=False)
        check_notional(rules, order.price, order.orig_qty)
    marketable = market or (order.price >= price_now if order.side == "BUY" else order.price <= price_now)
    if order.type == "LIMIT_MAKER" and marketable:
        raise BinanceAPIError(-2010, "Order would immediately match and take.")
    # Balance check: what the order may spend at most.
    if order.side == "BUY":
        need = (order.orig_qty * (price_now if market else order.price)).quantize(Q8, rounding=ROUND_DOWN)
        if account.balance(rules.quote).free < need:
            raise insufficient_balance()
    elif account.balance(rules.base).free < order.orig_qty:
        raise insufficient_balance()
    account.add_order(order)
    order.next_ms = now_ms
    if marketable:
        _fill(account, rules, order, order.orig_qty, price_now, maker=False, time_ms=now_ms,
              trade_id=next_trade_id())
        return
    if order.time_in_force in ("IOC", "FOK"):
        order.status = "EXPIRED"
        return
    if order.side == "BUY":
        order.locked = (order.orig_qty * order.price).quantize(Q8, rounding=ROUND_DOWN)
        bal = account.balance(rules.quote)
    else:
        order.locked = order.orig_qty
        bal = account.balance(rules.base)
    bal.free -= order.locked
    bal.locked += order.locked


def match_open_orders(account: SimAccount, rules_by_symbol: dict[str, SymbolRules], data: MarketData, *,
                      now_ms: int, next_trade_id: Any) -> int:
    """Fill ``account``'s resting orders against the candles closed since they were last matched.

    Returns the number of fills booked. Candle ``i`` of the finest interval is considered once per
    order; the fill's time is the candle's close time (its last ms).
    """
    booked = 0
    for order in account.open_orders():
        by_interval = data.series.get(order.symbol)
        if not by_interval:
            continue
        series = next(iter(by_interval.values()))
        lo = int(np.searchsorted(series.open_time, order.next_ms, side="left"))
        hi = series.closed_count(now_ms)
        if hi <= lo:
            continue
        block = series.ohlcv[lo:hi]
        price = float(order.price)
        crossing = block[:, 2] <= price if order.side == "BUY" else block[:, 1] >= price
        rules = rules_by_symbol[order.symbol]
        for i in np.nonzero(crossing)[0].tolist():
            cap = (Decimal(repr(float(block[i, 4]))) * PARTICIPATION).quantize(rules.step, rounding=ROUND_DOWN)
            qty = min(order.orig_qty - order.executed_qty, cap)
            if qty <= 0:
                continue
            t = int(series.open_time[lo + i]) + series.interval_ms - 1
            _fill(account, rules, order, qty, order.price, maker=True, time_ms=t, trade_id=next_trade_id())
            booked += 1
            if not order.is_open:
                break
        order.next_ms = int(series.open_time[hi - 1]) + 1
    return booked
