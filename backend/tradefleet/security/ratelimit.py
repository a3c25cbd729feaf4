"""Rate limits per client IP and per account, with the ``limits`` library.

Storage: Redis (``REDIS_URL``) when set, so every API process shares the counters; process memory
otherwise (the embedded single-process setup). Strategy: moving window, so a burst at a window's edge
cannot double the allowance.

Limits are ``limits`` strings from the settings (``RATE_LIMIT_LOGIN="10/minute;100/hour"``), one per
*scope*: ``login``, ``register``, ``password_reset``, ``2fa``, ``webhook``. A request over a limit gets
``429 {"detail": "too many requests, retry in N s"}`` with ``Retry-After: N`` (seconds).

Use:

* per IP, as a route or router dependency: ``dependencies=[Depends(limit_ip("webhook"))]`` (webhooks:
  mount their router in ``PUBLIC_ROUTERS`` with this dependency; they authenticate by signature, so the
  IP is the only key before the signature is checked);
* per account, in the handler once the e-mail is known: ``hit_account("login", form.username)``;
* the auth router gets both through :func:`limit_auth`, which reads the scope from the route's path and
  the account from the body's ``username`` (form) or ``email`` (JSON) field; the users router's password
  and 2FA routes through :func:`limit_user_routes` (per IP and per signed-in user).

The client IP is :func:`client_ip`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import time
from functools import lru_cache

from fastapi import Request
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


def _limits(scope: str) -> list[RateLimitItem]:
    if scope not in SCOPES:
        raise ValueError(f"unknown rate-limit scope {scope!r}; one of {SCOPES}")
    text = getattr(get_settings(), f"RATE_LIMIT_{scope.upper()}")
    return parse_many(text)


def _hit(scope: str, kind: str, key: str) -> None:
    settings = get_settings()
    if not settings.RATE_LIMIT_ENABLED:
        return
    limiter = MovingWindowRateLimiter(get_storage())
    for item in _limits(scope):
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


def client_ip(request: Request) -> str:
    """The client's IP address.

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


def limit_ip(scope: str):
    """A FastAPI dependency that counts the request against ``scope``'s limits for the client IP."""
    _limits(scope)  # fail at import time on an unknown scope

    def dependency(request: Request) -> None:
        hit_ip(scope, client_ip(request))

    dependency.__name__ = f"limit_ip_{scope}"
    return dependency


# Route paths of the auth router (without the /api/v1 prefix) and their scope; routes of the router
# that are not listed (logout, refresh, ...) are not limited here.
AUTH_PATH_SCOPES = {
    "/auth/login": "login",
    "/auth/login/2fa": "2fa",
    "/auth/register": "register",
    "/auth/verify-email": "register",
    "/auth/resend-verification": "register",
    "/auth/password-reset/request": "password_reset",
    "/auth/password-reset/confirm": "password_reset",
}


# Scopes of the owner's way back into an account: their per-account counter is kept per client IP too.
OWNER_RECOVERY_SCOPES = frozenset({"password_reset"})


async def _account_from_body(request: Request) -> str | None:
    # FastAPI has already read (and cached) the body to validate it, so reading it again is free.
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get("username") or form.get("email")
        else:
            body = json.loads(await request.body() or b"null")
            value = body.get("email") if isinstance(body, dict) else None
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, str) else None


async def limit_auth(request: Request) -> None:
    """Router dependency of the auth routes: the route's scope (:data:`AUTH_PATH_SCOPES`) per client IP
    and, when the body names an account (``username`` form field or ``email`` JSON field), per account
    (per account and client IP for :data:`OWNER_RECOVERY_SCOPES`, so the reset stays open to the owner)."""
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    scope = next((s for p, s in AUTH_PATH_SCOPES.items() if path.endswith(p)), None)
    if scope is None:
        return
    ip = client_ip(request)
    hit_ip(scope, ip)
    account = await _account_from_body(request)
    if account:
        if scope in OWNER_RECOVERY_SCOPES:
            # Counted per (account, IP): someone spending an account's allowance from their own address
            # must not keep its owner, elsewhere, from asking for a reset link.
            hit_account(scope, f"{account.strip().lower()} from {ip}")
        else:
            hit_account(scope, account)


# Routes of the users router that check a password or a 2FA code of the signed-in user: limited per
# IP and per user (a stolen access token must not buy unlimited guesses at the password or the code).
USER_PATH_SCOPES = {
    "/users/me/password": "login",
    "/users/me/2fa/setup": "2fa",
    "/users/me/2fa/enable": "2fa",
    "/users/me/2fa/disable": "2fa",
}


async def limit_user_routes(request: Request) -> None:
    """Router dependency of the users router: :data:`USER_PATH_SCOPES` per client IP and per user (the
    subject of the bearer token; an invalid token is left to the authentication dependency)."""
    from tradefleet.security.tokens import TokenError, decode_access_token

    path = request.url.path
    scope = next((s for p, s in USER_PATH_SCOPES.items() if path.endswith(p)), None)
    if scope is None or request.method != "POST":
        return
    hit_ip(scope, client_ip(request))
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        try:
            user_id = decode_access_token(authorization[7:].strip())
        except TokenError:
            return
        hit_account(scope, f"user:{user_id}")
