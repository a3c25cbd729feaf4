"""Request dependencies as named aliases: ``SessionDep``, ``TokenDep``, ``CurrentUser``, ``CurrentAdmin``.

Use them in route signatures (``def me(user: CurrentUser)``); admin routes say so in their decorator with
``dependencies=[Depends(get_current_admin)]`` or take a ``CurrentAdmin`` argument.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import OAuth2PasswordBearer
from sqlmodel import Session

from tradefleet.db import get_engine
from tradefleet.models import Role, User
from tradefleet.config import get_settings
from tradefleet.security.tokens import TokenError, decode_access_claims

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
