"""Tokens: JWT access tokens and 2FA login tokens (PyJWT, HS256, ``JWT_SECRET_KEY``), and opaque random
tokens (refresh tokens, e-mail links) that are stored only as hashes.

JWT claims: ``sub`` (the user id as a string), ``iat`` and ``exp`` (epoch seconds, UTC), ``type``
(``"access"`` or ``"mfa"``), ``jti`` (a random id) and ``ver`` (the user's ``token_version`` when the token
was issued: raising it, on a password change or when an admin disables the account, invalidates every
token issued before; :func:`tradefleet.api.deps.get_current_user` compares it).

Access tokens are short-lived (``ACCESS_TOKEN_EXPIRE_MINUTES``, 15 by default); the client renews them
with a rotating refresh token (:mod:`tradefleet.services.auth_tokens`).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from tradefleet.config import get_settings

ALGORITHM = "HS256"
ACCESS = "access"
MFA = "mfa"
# ``ver`` is required: a token without it would escape every revocation by ``token_version``.
_REQUIRED_CLAIMS = ["sub", "exp", "iat", "type", "jti", "ver"]


class TokenError(Exception):
    """A token that must not be accepted: malformed, badly signed, expired, or of the wrong type.

    The message is safe to show to the client ("token expired", "invalid token").
    """


@dataclass(frozen=True)
class TokenClaims:
    """What a valid JWT of this module says: who, and under which ``token_version``."""

    user_id: uuid.UUID
    token_version: int


def create_access_token(user_id: uuid.UUID, *, token_version: int = 0,
                        expires_delta: timedelta | None = None) -> str:
    """A signed access token for ``user_id``, valid ``ACCESS_TOKEN_EXPIRE_MINUTES`` (or ``expires_delta``)."""
    if expires_delta is None:
        expires_delta = timedelta(minutes=get_settings().ACCESS_TOKEN_EXPIRE_MINUTES)
    return _encode(subject=str(user_id), token_type=ACCESS, expires_delta=expires_delta,
                   extra={"ver": token_version})


def decode_access_claims(token: str) -> TokenClaims:
    """The claims of a valid access token.

    Raises :class:`TokenError` when the token is malformed, not signed with ``JWT_SECRET_KEY`` using HS256,
    expired, lacks a claim (``ver`` included), is not of type ``access``, its ``sub`` is not a UUID or its
    ``ver`` not an integer.
    """
    return _claims(_decode(token, token_type=ACCESS))


def decode_access_token(token: str) -> uuid.UUID:
    """The user id of a valid access token (see :func:`decode_access_claims` for the errors)."""
    return decode_access_claims(token).user_id


def create_mfa_token(user_id: uuid.UUID, *, token_version: int) -> str:
    """The ``mfa_token`` a password login returns when the account has 2FA: it proves the password
    only, lives ``MFA_TOKEN_EXPIRE_MINUTES``, and is accepted by ``POST /auth/login/2fa`` alone."""
    minutes = get_settings().MFA_TOKEN_EXPIRE_MINUTES
    return _encode(subject=str(user_id), token_type=MFA, expires_delta=timedelta(minutes=minutes),
                   extra={"ver": token_version})


def decode_mfa_token(token: str) -> TokenClaims:
    """The claims of a valid ``mfa_token``; :class:`TokenError` otherwise."""
    return _claims(_decode(token, token_type=MFA))


def new_opaque_token() -> tuple[str, str]:
    """``(token, token_hash)``: 256 random bits (urlsafe base64) and the SHA-256 hex digest that is stored."""
    token = secrets.token_urlsafe(32)
    return token, hash_opaque_token(token)


def hash_opaque_token(token: str) -> str:
    """SHA-256 hex of an opaque token (a lookup key: the token has 256 bits, no salt or slow hash needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _claims(claims: dict[str, Any]) -> TokenClaims:
    try:
        user_id = uuid.UUID(claims["sub"])
    except (ValueError, TypeError, AttributeError) as exc:
        raise TokenError("invalid token") from exc
    version = claims.get("ver")
    if not isinstance(version, int) or isinstance(version, bool):
        raise TokenError("invalid token")
    return TokenClaims(user_id=user_id, token_version=version)


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
