"""The live broker: one exchange account's orders through ccxt.

:class:`CcxtBroker` is a thin, stateless wrapper over a ccxt exchange built with the account's keys
(:func:`tradefleet.market.exchange.make_exchange`). Every method is **one** request attempt and
raises ccxt's own exceptions; retrying, looking an order up before re-sending it and recording the
result are the order manager's job (:mod:`tradefleet.execution.orders`), because only it knows
whether a retry is safe.

Conventions (ccxt's unified API): symbols ``BASE/QUOTE``, amounts in the base currency, prices and
costs in the quote currency, times in epoch ms. Amounts and prices go through
``amount_to_precision`` / ``price_to_precision`` (floored to the market's step, as the paper broker
does). A market buy is sized in base: ``floor_to_step(budget / (price × (1 + taker)))``, the paper
path's rule, with the candle's close as the price estimate.

Client order ids: Binance takes ``newClientOrderId`` to place and ``origClientOrderId`` to look up
or cancel; ccxt's unified ``clientOrderId`` param is mapped to the former for binance.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, TypeVar

import ccxt

from tradefleet.config import get_settings
from tradefleet.market.exchange import make_exchange
from tradefleet.market.retries import with_retries

log = logging.getLogger(__name__)

T = TypeVar("T")

PAUSING = (ccxt.InsufficientFunds, ccxt.InvalidOrder, ccxt.AuthenticationError, ccxt.PermissionDenied,
           ccxt.AccountSuspended, ccxt.BadRequest)
"""Errors no retry fixes: the order is rejected and its run paused with the reason (``OrderNotFound``
is an ``InvalidOrder`` too, but is caught before this where it means "never placed"). ``BadRequest``
holds ``BadSymbol`` and what ccxt makes of Binance's other filter failures (-1013 NOTIONAL,
MARKET_LOT_SIZE) and malformed numbers: only LOT_SIZE and PRICE_FILTER become ``InvalidOrder``."""


def _client_id_param(exchange_id: str, placing: bool) -> str:
    if exchange_id.startswith("binance"):
        return "newClientOrderId" if placing else "origClientOrderId"
    return "clientOrderId"


_MARKETS: dict[tuple[str, str], tuple[dict, dict]] = {}
_MARKETS_LOCK = threading.Lock()


class BrokerUnavailable(Exception):
    """A run's exchange account cannot be used (deleted, or its keys cannot be decrypted)."""


class CcxtBroker:
    """Orders of one exchange account. ``exchange``: a ccxt exchange with the account's keys (its
    markets are loaded on first use, one request)."""

    def __init__(self, exchange: ccxt.Exchange) -> None:
        self.exchange = exchange
        self._markets_lock = threading.Lock()

    @property
    def exchange_id(self) -> str:
        return self.exchange.id

    def load_markets(self) -> None:
        """The exchange's markets, loaded once per exchange (and API URLs) per process and shared by
        every account's broker: one ``exchangeInfo`` request, not one per account."""
        with self._markets_lock:
            if self.exchange.markets:
                return
            key = (self.exchange.id, repr(self.exchange.urls.get("api")))  # sandbox, simulator: other URLs
            with _MARKETS_LOCK:
                known = _MARKETS.get(key)
            if known is not None:
                self.exchange.set_markets(*known)
                return
            self.exchange.load_markets()
            with _MARKETS_LOCK:
                _MARKETS[key] = (self.exchange.markets, self.exchange.currencies)

    # ------------------------------------------------------------------ precision
    def amount_to_precision(self, symbol: str, amount: float) -> float:
        """``amount`` floored to the market's amount step (base currency). Raises ccxt ``InvalidOrder``
        when it rounds to nothing."""
        self.load_markets()
        return float(self.exchange.amount_to_precision(symbol, amount))

    def price_to_precision(self, symbol: str, price: float) -> float:
        self.load_markets()
        return float(self.exchange.price_to_precision(symbol, price))

    def market(self, symbol: str) -> dict[str, Any]:
        self.load_markets()
        return self.exchange.market(symbol)

    # ------------------------------------------------------------------ orders (one attempt each)
    def create_order(self, symbol: str, side: str, amount: float, client_order_id: str, *,
                     type: str = "market", price: float | None = None) -> dict[str, Any]:
        """Place an order with ``client_order_id``; returns ccxt's unified order. ``amount`` in base,
        already at precision (see :meth:`amount_to_precision`); ``price`` for limit orders."""
        self.load_markets()
        params = {_client_id_param(self.exchange_id, True): client_order_id}
        if price is not None:
            price = self.price_to_precision(symbol, price)
        return self.exchange.create_order(symbol, type, side, amount, price, params)

    def fetch_order_by_client_id(self, symbol: str, client_order_id: str) -> dict[str, Any] | None:
        """The order placed with ``client_order_id``, or ``None`` when the exchange has none (ccxt's
        ``OrderNotFound``: it was never placed)."""
        self.load_markets()
        try:
            return self.exchange.fetch_order(None, symbol, {_client_id_param(self.exchange_id, False): client_order_id})
        except ccxt.OrderNotFound:
            return None

    def cancel_order(self, symbol: str, exchange_order_id: str | None, client_order_id: str) -> dict[str, Any] | None:
        """Cancel the order; ``None`` when the exchange does not know it (or it is already final there:
        Binance answers "Unknown order" for both)."""
        self.load_markets()
        params = {} if exchange_order_id else {_client_id_param(self.exchange_id, False): client_order_id}
        try:
            return self.exchange.cancel_order(exchange_order_id, symbol, params)
        except ccxt.OrderNotFound:
            return None

    def order_trades(self, symbol: str, exchange_order_id: str) -> list[dict[str, Any]]:
        """The account's trades (executions) of one order, oldest first: ccxt unified trades with
        ``id``, ``timestamp``, ``price``, ``amount``, ``cost`` and ``fee {cost, currency}``."""
        self.load_markets()
        trades = self.exchange.fetch_my_trades(symbol, None, None, {"orderId": exchange_order_id})
        return [t for t in trades if str(t.get("order")) == str(exchange_order_id)]

    def fetch_balance(self) -> dict[str, Any]:
        return self.exchange.fetch_balance()

    def fetch_open_orders(self, symbol: str) -> list[dict[str, Any]]:
        self.load_markets()
        return self.exchange.fetch_open_orders(symbol)


def retrying(call: Callable[[], T], *, what: str, attempts: int | None = None, backoff_s: float | None = None,
             sleep: Callable[[float], None] = time.sleep) -> T:
    """``call()`` through :func:`tradefleet.market.retries.with_retries`: retried on transient errors
    with exponential backoff (``LIVE_BACKOFF_S``, doubled, capped at 8 s), made at most
    ``LIVE_SEND_ATTEMPTS`` times; the last error is raised.
    Only for requests that are safe to repeat (look-ups, cancels, balances), never for a send."""
    settings = get_settings()
    return with_retries(call, what=what, attempts=attempts or settings.LIVE_SEND_ATTEMPTS,
                        delay_s=settings.LIVE_BACKOFF_S if backoff_s is None else backoff_s, max_delay_s=8.0,
                        sleep=sleep)


_BROKERS: OrderedDict[tuple, CcxtBroker] = OrderedDict()
_BROKERS_LOCK = threading.Lock()
_BROKERS_MAX = 256


def broker_for(exchange_id: str, *, credentials: dict[str, str], sandbox: bool, cache_key: tuple) -> CcxtBroker:
    """A broker per account and key version per process (ccxt objects keep their markets and rate
    limiter). ``cache_key`` must change when the keys do (the account id and its key fingerprint),
    so that edited keys are used at once. The credentials stay in the ccxt object's memory only."""
    with _BROKERS_LOCK:
        broker = _BROKERS.get(cache_key)
        if broker is not None:
            _BROKERS.move_to_end(cache_key)
            return broker
    broker = CcxtBroker(make_exchange(exchange_id, credentials=credentials, sandbox=sandbox))
    with _BROKERS_LOCK:
        _BROKERS[cache_key] = broker
        while len(_BROKERS) > _BROKERS_MAX:
            _BROKERS.popitem(last=False)
    return broker


def forget_brokers() -> None:
    """Drop every cached broker (tests; after a key rotation)."""
    with _BROKERS_LOCK:
        _BROKERS.clear()
    with _MARKETS_LOCK:
        _MARKETS.clear()
