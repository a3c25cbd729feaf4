"""JWT access tokens (PyJWT, HS256, signed with ``Settings.JWT_SECRET_KEY``).

Claims: ``sub`` (the user id as a string), ``iat`` and ``exp`` (epoch seconds, UTC), ``type`` (``"access"``)
and ``jti`` (a random id, so a later revocation list can name one token). Refresh tokens, revocation and
2FA will add token types and checks: :func:`_encode` and :func:`_decode` are the seams for that.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from tradefleet.config import get_settings

ALGORITHM = "HS256"
ACCESS = "access"
_REQUIRED_CLAIMS = ["sub", "exp", "iat", "type", "jti"]


class TokenError(Exception):
    """A token that must not be accepted: malformed, badly signed, expired, or of the wrong type.

    The message is safe to show to the client ("token expired", "invalid token").
    """


def create_access_token(user_id: uuid.UUID, *, expires_delta: timedelta | None = None) -> str:
    """A signed access token for ``user_id``, valid ``ACCESS_TOKEN_EXPIRE_MINUTES`` (or ``expires_delta``)."""
    if expires_delta is None:
        expires_delta = timedelta(minutes=get_settings().ACCESS_TOKEN_EXPIRE_MINUTES)
    return _encode(subject=str(user_id), token_type=ACCESS, expires_delta=expires_delta)


def decode_access_token(token: str) -> uuid.UUID:
    """The user id of a valid access token.

    Raises :class:`TokenError` when the token is malformed, not signed with ``JWT_SECRET_KEY`` using HS256,
    expired, lacks a claim, is not of type ``access``, or its ``sub`` is not a UUID.
    """
    claims = _decode(token, token_type=ACCESS)
    try:
        return uuid.UUID(claims["sub"])
    except (ValueError, TypeError, AttributeError) as exc:
        raise TokenError("invalid token") from exc


def _secret() -> str:
    return get_settings().JWT_SECRET_KEY.get_secret_value()


def _encode(*, subject: str, token_type: str, expires_delta: timedelta,
            extra: dict[str, Any] | None = None) -> str:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": subject,
        "iat": now,
        "exp": now + expires_delta,
        "type": token_type,
        "jti": uuid.uuid4().hex,
        **(extra or {}),
    }
    return jwt.encode(claims, _secret(), algorithm=ALGORITHM)


def _decode(token: str, *, token_type: str) -> dict[str, Any]:
    try:
        # algorithms is pinned: never let the token's own header choose (e.g. "none").
        claims = jwt.decode(token, _secret(), algorithms=[ALGORITHM],
                            options={"require": _REQUIRED_CLAIMS})
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("token expired") from exc
    except jwt.PyJWTError as exc:
        raise TokenError("invalid token") from exc
    if claims.get("type") != token_type:
        raise TokenError("invalid token")
    return claims
