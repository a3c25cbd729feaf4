"""Rate limits per client IP and per account, with the ``limits`` library.

Storage: Redis (``REDIS_URL``) when set, so every API process shares the counters; process memory
otherwise (the embedded single-process setup). Strategy: moving window, so a burst at a window's edge
cannot double the allowance.

Limits are ``limits`` strings from the settings (``RATE_LIMIT_LOGIN="10/minute;100/hour"``), one per
*scope*: ``login``, ``register``, ``password_reset``, ``2fa``, ``webhook``. A request over a limit gets
``429 {"detail": "too many requests, retry in N s"}`` with ``Retry-After: N`` (seconds).

Use: :func:`hit_ip` per client IP (:func:`client_ip`), :func:`hit_account` per account once the e-mail
is known (``hit_account("login", form.username)``). The FastAPI dependencies that apply them to routes
and routers are in :mod:`tradefleet.api.rate_limits`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from functools import lru_cache
from typing import Any

from limits import RateLimitItem, parse_many
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from tradefleet.config import get_settings
from tradefleet.errors import DomainError

SCOPES = ("login", "register", "password_reset", "2fa", "webhook")


class RateLimited(DomainError):
    """429: too many requests (or a locked account); ``retry_after_s`` goes into ``Retry-After``."""

    status_code = 429
    detail = "too many requests"

    def __init__(self, retry_after_s: int, detail: str | None = None) -> None:
        self.retry_after_s = max(1, int(retry_after_s))
        super().__init__(detail or f"too many requests, retry in {self.retry_after_s} s")

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


@lru_cache(maxsize=4)
def _storage_for(uri: str) -> Storage:
    return storage_from_string(uri)


def get_storage() -> Storage:
    """The counter storage of the current settings: Redis at ``REDIS_URL``, else process memory.

    Shared with :mod:`tradefleet.security.lockout`."""
    url = get_settings().REDIS_URL
    return _storage_for(url if url else "memory://")


def reset_storage() -> None:
    """Forget every counter (tests; the memory storage only lives in this process anyway)."""
    get_storage().reset()


def scope_limits(scope: str) -> list[RateLimitItem]:
    """The limits of ``scope`` from the settings; ``ValueError`` for a scope not in :data:`SCOPES`."""
    if scope not in SCOPES:
        raise ValueError(f"unknown rate-limit scope {scope!r}; one of {SCOPES}")
    text = getattr(get_settings(), f"RATE_LIMIT_{scope.upper()}")
    return parse_many(text)


def _hit(scope: str, kind: str, key: str) -> None:
    settings = get_settings()
    if not settings.RATE_LIMIT_ENABLED:
        return
    limiter = MovingWindowRateLimiter(get_storage())
    for item in scope_limits(scope):
        if not limiter.hit(item, "tradefleet", scope, kind, key):
            reset_at, _remaining = limiter.get_window_stats(item, "tradefleet", scope, kind, key)
            raise RateLimited(math.ceil(reset_at - time.time()))


def account_key(account: str) -> str:
    """The counter key of an account: a hash of the normalised e-mail (no addresses in Redis)."""
    return hashlib.sha256(account.strip().lower().encode()).hexdigest()[:32]


def hit_ip(scope: str, ip: str) -> None:
    """Count one request of ``ip`` under ``scope``; :class:`RateLimited` (429) when over the limit."""
    _hit(scope, "ip", ip)


def hit_account(scope: str, account: str) -> None:
    """Count one request for ``account`` (an e-mail, any case) under ``scope``; 429 when over."""
    if account and account.strip():
        _hit(scope, "account", account_key(account))


def _trusted(peer: str) -> bool:
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    for entry in get_settings().TRUSTED_PROXIES:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def client_ip(request: Any) -> str:
    """The client's IP address of a Starlette request (``request.client``, ``request.headers``).

    The socket's peer, except when that peer is one of ``TRUSTED_PROXIES`` (empty by default: then
    never): then the right-most ``X-Forwarded-For`` entry that is not itself a trusted proxy. In
    production Nginx on the same host proxies every request (``TRUSTED_PROXIES=127.0.0.1``), so the
    socket peer is always 127.0.0.1 and the real client is what Nginx appended to
    ``X-Forwarded-For``; a client talking to us directly could write any ``X-Forwarded-For`` it
    likes, so the header is believed only from a listed peer, and only the entries our proxies added
    (the right end), never the ones the client sent (the left end). Nothing is listed by default:
    under ``make run`` nothing proxies, and any local program could claim any address.
    (Uvicorn's own ``--proxy-headers`` may already have replaced the peer by the forwarded address;
    ``make run`` starts uvicorn with ``--no-proxy-headers``, so this function alone decides.)
    """
    peer = request.client.host if request.client else "unknown"
    return client_ip_of(peer, request.headers.get("x-forwarded-for", ""))


def client_ip_of(peer: str, forwarded: str) -> str:
    """:func:`client_ip` from the socket peer's address and the ``X-Forwarded-For`` header value."""
    if not _trusted(peer):
        return peer
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # a malformed header: fall back to the proxy itself
    return peer
