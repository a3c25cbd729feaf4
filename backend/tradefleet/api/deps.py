"""Request dependencies as named aliases: ``SessionDep``, ``TokenDep``, ``CurrentUser``, ``CurrentAdmin``.

Use them in route signatures (``def me(user: CurrentUser)``); admin routes say so in their decorator with
``dependencies=[Depends(get_current_admin)]`` or take a ``CurrentAdmin`` argument.

:data:`AUTHENTICATED` is the dependency list of the authenticated router (main.py): the user's in-flight
slot (before any database work), the user, then the user's rate limits (``security/user_limits.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from sqlmodel import Session

from tradefleet.db import get_engine
from tradefleet.models import Role, User
from tradefleet.config import get_settings
from tradefleet.security.tokens import TokenError, decode_access_claims
from tradefleet.security.user_limits import hit_rate, hold_slot, is_heavy, user_from_authorization

API_PREFIX = "/api/v1"


def get_session() -> Iterator[Session]:
    """A database session for one request, closed (and anything uncommitted rolled back) afterwards."""
    with Session(get_engine()) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

# Reads "Authorization: Bearer <token>"; answers 401 with WWW-Authenticate: Bearer when it is missing.
reusable_oauth2 = OAuth2PasswordBearer(tokenUrl=f"{API_PREFIX}/auth/login")
TokenDep = Annotated[str, Depends(reusable_oauth2)]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail,
                         headers={"WWW-Authenticate": "Bearer"})


def get_current_user(session: SessionDep, token: TokenDep) -> User:
    """The active user the bearer token names.

    401 with ``WWW-Authenticate: Bearer`` when the token is missing, malformed, forged, expired, or names a
    user that no longer exists or was deactivated (a deactivated user's old tokens stop working at once),
    or was issued before the user's ``token_version`` was raised (password changed, account disabled).
    """
    try:
        claims = decode_access_claims(token)
    except TokenError as exc:
        raise _unauthorized(str(exc)) from None
    user = session.get(User, claims.user_id)
    if user is None:
        raise _unauthorized("could not validate credentials")
    if not user.is_active:
        raise _unauthorized("account disabled")
    if user.token_version != claims.token_version:
        # Issued before the password changed or the account was disabled.
        raise _unauthorized("token revoked; sign in again")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def get_current_admin(current_user: CurrentUser) -> User:
    """The current user if they are an admin; 403 otherwise, and 403 for an admin without 2FA while
    ``REQUIRE_2FA_FOR_ADMINS`` is set (they can still enrol at ``/users/me/2fa``, not an admin route)."""
    if current_user.role != Role.admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="admin only")
    if get_settings().REQUIRE_2FA_FOR_ADMINS and not current_user.totp_enabled:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail="two-factor authentication required for admins: enable it at "
                                   "POST /api/v1/users/me/2fa/setup, then /users/me/2fa/enable")
    return current_user


CurrentAdmin = Annotated[User, Depends(get_current_admin)]


def _route_path(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", request.url.path)


async def hold_user_slot(request: Request) -> AsyncIterator[None]:
    """Hold one of the token's user's in-flight slots for the whole request; 429 with ``Retry-After``
    when the user has too many in progress (``USER_MAX_IN_FLIGHT``, ``USER_MAX_IN_FLIGHT_HEAVY``).

    Async on purpose: it runs on the event loop before the user is loaded, so a refused request never
    waits for a thread or a database connection. A missing or invalid token takes no slot (the
    authentication dependency refuses it next)."""
    user_id = user_from_authorization(request.headers.get("authorization"))
    if user_id is None:
        yield
        return
    with hold_slot(user_id, heavy=is_heavy(_route_path(request))):
        yield


def limit_user_rate(request: Request, user: CurrentUser) -> None:
    """Count the request against the user's rate limits (``RATE_LIMIT_USER``, ``RATE_LIMIT_ADMIN`` for
    admins, ``RATE_LIMIT_USER_HEAVY`` on heavy routes); 429 with ``Retry-After`` when over."""
    hit_rate(user.id, admin=user.role == Role.admin, heavy=is_heavy(_route_path(request)))


AUTHENTICATED = [Depends(hold_user_slot), Depends(get_current_user), Depends(limit_user_rate)]
"""Dependencies of every authenticated route, in this order."""
