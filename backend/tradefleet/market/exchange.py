"""The one place that builds ccxt exchange objects.

Everything that talks to an exchange gets its ``ccxt.Exchange`` from :func:`make_exchange`, so that
one setting (``EXCHANGE_API_URLS``) can point an exchange at the project's simulator and nothing
else in the engine knows it is not the real exchange.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import ccxt

from tradefleet.config import get_settings

# ccxt logs every request's headers and every response at DEBUG (``ccxt.base.exchange``): the
# headers carry API keys (Binance's X-MBX-APIKEY, OKX's passphrase). Never below INFO, whatever the
# root level (SECRETS.md); workers also scrub decrypted keys from every log record.
logging.getLogger("ccxt").setLevel(logging.INFO)

# Per-exchange ccxt options: Tradefleet trades spot markets only, so ccxt must not load the
# derivatives markets (three extra requests on binance's load_markets), nor, with credentials, the
# margin pairs (``fetchMargins``: two signed /sapi requests per load_markets). Open orders of all
# markets are fetched on purpose when reconciling (``warnOnFetchOpenOrdersWithoutSymbol``).
_EXCHANGE_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {
        "defaultType": "spot",
        "fetchMarkets": {"types": ["spot"]},
        "fetchMargins": False,
        "fetchCurrencies": False,
        "adjustForTimeDifference": False,
        "warnOnFetchOpenOrdersWithoutSymbol": False,
    },
}


class UnknownExchange(ValueError):
    """The exchange id is not a ccxt exchange, or not enabled on this platform."""


ExchangeError = ccxt.BaseError
"""The base class of every error ccxt raises (network, exchange, authentication, bad request): callers
outside :mod:`tradefleet.market` and :mod:`tradefleet.execution` catch exchange failures by this name."""
NetworkError = ccxt.NetworkError
"""ccxt's network failures (timeouts, refused connections, rate limits, maintenance)."""
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (ccxt.NetworkError, ccxt.RateLimitExceeded, ccxt.ExchangeNotAvailable)
"""Errors after which a retry can succeed: the exchange is slow, down or rate-limiting us."""
PERMANENT_ERRORS: tuple[type[Exception], ...] = (ccxt.BadSymbol, ccxt.BadRequest)
"""Errors that no retry fixes for this market: the exchange says the symbol or timeframe is wrong."""


@dataclass(frozen=True)
class ExchangeTraits:
    """What ccxt declares about an exchange, read without network: ``has_testnet`` (ccxt has
    ``urls["test"]``, so ``set_sandbox_mode`` works) and ``required_credentials`` (ccxt's names of the
    credentials its ``requiredCredentials`` asks for: ``apiKey``, ``secret``, ``password``, ``uid``)."""

    has_testnet: bool
    required_credentials: frozenset[str]


def exchange_class(exchange_id: str) -> type[ccxt.Exchange]:
    """ccxt's class of ``exchange_id``; :class:`UnknownExchange` when ccxt has no such exchange."""
    klass = getattr(ccxt, exchange_id, None)
    if exchange_id not in ccxt.exchanges or klass is None:
        raise UnknownExchange(f"unknown exchange {exchange_id!r}")
    return klass


def exchange_traits(exchange_id: str) -> ExchangeTraits:
    """The :class:`ExchangeTraits` of ``exchange_id`` from an instance built locally (no request is
    sent). Raises :class:`UnknownExchange`."""
    probe = exchange_class(exchange_id)({"enableRateLimit": False})
    required = probe.requiredCredentials or {}
    return ExchangeTraits(has_testnet=bool((probe.urls or {}).get("test")),
                          required_credentials=frozenset(name for name, needed in required.items() if needed))


def _rebase(url: str, base: str) -> str:
    """Replace the scheme and host of ``url`` by those of ``base``, keeping the path.

    ``_rebase("https://api.binance.com/api/v3", "http://127.0.0.1:8100")`` gives
    ``"http://127.0.0.1:8100/api/v3"``.
    """
    target = urlsplit(base)
    parts = urlsplit(url)
    path = target.path.rstrip("/") + parts.path
    return urlunsplit((target.scheme, target.netloc, path, parts.query, parts.fragment))


def _rebase_tree(node: Any, base: str) -> Any:
    if isinstance(node, str):
        return _rebase(node, base) if node.startswith("http") else node
    if isinstance(node, dict):
        return {key: _rebase_tree(value, base) for key, value in node.items()}
    return node


def make_exchange(
    exchange_id: str,
    *,
    credentials: dict[str, str] | None = None,
    sandbox: bool = False,
    api_base_url: str | None = None,
) -> ccxt.Exchange:
    """A synchronous ccxt exchange for ``exchange_id`` with the platform's options.

    ``api_base_url`` (default: ``EXCHANGE_API_URLS[exchange_id]``) replaces the scheme and host of
    every API URL of the exchange. ``credentials`` holds ccxt's ``apiKey``, ``secret``, ``password``
    and ``uid`` and is only ever passed by the worker at the moment of use.

    Raises :class:`UnknownExchange` when ccxt has no such exchange.
    """
    settings = get_settings()
    klass = exchange_class(exchange_id)
    config: dict[str, Any] = {
        "enableRateLimit": True,
        "timeout": settings.CCXT_TIMEOUT_MS,
        "options": dict(_EXCHANGE_OPTIONS.get(exchange_id, {})),
    }
    if credentials:
        config.update({k: v for k, v in credentials.items() if v})
    exchange = klass(config)
    if sandbox:
        exchange.set_sandbox_mode(True)
    base = api_base_url or settings.EXCHANGE_API_URLS.get(exchange_id)
    if base:
        exchange.urls["api"] = _rebase_tree(exchange.urls["api"], base)
    return exchange
