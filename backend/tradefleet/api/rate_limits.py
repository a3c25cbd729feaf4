"""FastAPI dependencies that apply the rate limits of :mod:`tradefleet.security.ratelimit` to routes.

* per IP, as a route or router dependency: ``dependencies=[Depends(limit_ip("webhook"))]`` (webhooks:
  mount their router in ``PUBLIC_ROUTERS`` with this dependency; they authenticate by signature, so the
  IP is the only key before the signature is checked);
* the auth router gets per-IP and per-account limits through :func:`limit_auth`, which reads the scope
  from the route's path and the account from the body's ``username`` (form) or ``email`` (JSON) field;
  the users router's password and 2FA routes through :func:`limit_user_routes` (per IP and per
  signed-in user). Both are attached in :mod:`tradefleet.api.main`.
"""

from __future__ import annotations

import json

from fastapi import Request

from tradefleet.security.ratelimit import client_ip, hit_account, hit_ip, scope_limits


def limit_ip(scope: str):
    """A FastAPI dependency that counts the request against ``scope``'s limits for the client IP."""
    scope_limits(scope)  # fail at import time on an unknown scope

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
