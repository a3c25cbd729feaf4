"""Rotating refresh tokens, kept in Redis when ``REDIS_URL`` is set and in the database otherwise.

A refresh token is 256 random bits, handed to the client once and stored only as its SHA-256 digest,
with the user, the user's ``token_version`` at issue, an expiry (``REFRESH_TOKEN_EXPIRE_DAYS``) and a
**family** id: the chain of tokens that grew from one login by rotation.

* :meth:`RefreshStore.rotate` consumes a token and issues its successor in the same family, atomically.
* A token used a second time means it was copied (the thief or the owner used it after the other did):
  its whole family is revoked, so both parties must sign in again (the "refresh token reuse detection" of
  the OAuth 2.0 Security Best Current Practice, RFC 9700 section 4.14.2).
* :meth:`RefreshStore.revoke` (logout) revokes the token's family; :meth:`RefreshStore.revoke_user`
  (password change or reset, account disabled) every family of the user.

Two implementations of one interface: :class:`DatabaseRefreshStore` (table ``refresh_token``; row locks
serialise concurrent rotations) and :class:`RedisRefreshStore` (one Lua script per rotation, atomic on the
Redis server). :func:`get_refresh_store` picks one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Protocol

from sqlalchemy import update
from sqlmodel import Session, select

from tradefleet.config import get_settings
from tradefleet.db import lock_for_write
from tradefleet.errors import DomainError
from tradefleet.models import RefreshToken
from tradefleet.models._types import utcnow
from tradefleet.security.tokens import hash_opaque_token, new_opaque_token


class RefreshTokenError(DomainError):
    """401: the refresh token is unknown, expired, revoked, or was already used (which revoked its family)."""

    status_code = 401
    detail = "invalid refresh token"


REUSED = "refresh token already used: every session of that sign-in was revoked; sign in again"


@dataclass(frozen=True)
class Rotation:
    """The result of a rotation: whose token it was, under which ``token_version``, and its successor."""

    user_id: uuid.UUID
    token_version: int
    family_id: uuid.UUID
    refresh_token: str


class RefreshStore(Protocol):
    """Where refresh tokens live. Every method raises only :class:`RefreshTokenError` for bad tokens."""

    def issue(self, *, user_id: uuid.UUID, token_version: int, family_id: uuid.UUID | None = None) -> str:
        """A new refresh token (in a new family unless ``family_id``)."""
        ...

    def rotate(self, token: str) -> Rotation:
        """Consume ``token`` and issue its successor. A reused token revokes its family and raises."""
        ...

    def revoke(self, token: str) -> None:
        """Revoke ``token``'s family (logout). Unknown tokens are ignored (logging out twice is fine)."""
        ...

    def revoke_family(self, family_id: uuid.UUID) -> None:
        ...

    def revoke_user(self, user_id: uuid.UUID) -> None:
        """Revoke every refresh token of ``user_id``."""
        ...


def _ttl() -> timedelta:
    return timedelta(days=get_settings().REFRESH_TOKEN_EXPIRE_DAYS)


class DatabaseRefreshStore:
    """Refresh tokens in the ``refresh_token`` table, through ``session`` (committed by each method)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _insert(self, *, user_id: uuid.UUID, token_version: int, family_id: uuid.UUID) -> str:
        token, digest = new_opaque_token()
        self.session.add(RefreshToken(token_hash=digest, family_id=family_id, user_id=user_id,
                                      token_version=token_version, expires_at=utcnow() + _ttl()))
        return token

    def issue(self, *, user_id: uuid.UUID, token_version: int, family_id: uuid.UUID | None = None) -> str:
        token = self._insert(user_id=user_id, token_version=token_version, family_id=family_id or uuid.uuid4())
        self.session.commit()
        return token

    def rotate(self, token: str) -> Rotation:
        session = self.session
        session.rollback()  # start a fresh transaction: the lock below must be its first statement
        lock_for_write(session)
        # FOR UPDATE (PostgreSQL): a concurrent rotation of the same token waits here, then sees it used.
        row = session.exec(select(RefreshToken).where(RefreshToken.token_hash == hash_opaque_token(token))
                           .with_for_update()).first()
        if row is None:
            session.rollback()
            raise RefreshTokenError()
        if row.revoked_at is not None:
            session.rollback()
            raise RefreshTokenError("refresh token revoked; sign in again")
        if row.used_at is not None:
            self._revoke_where(RefreshToken.family_id == row.family_id)
            session.commit()
            raise RefreshTokenError(REUSED)
        if row.expires_at <= utcnow():
            session.rollback()
            raise RefreshTokenError("refresh token expired; sign in again")
        row.used_at = utcnow()
        session.add(row)
        successor = self._insert(user_id=row.user_id, token_version=row.token_version, family_id=row.family_id)
        rotation = Rotation(user_id=row.user_id, token_version=row.token_version, family_id=row.family_id,
                            refresh_token=successor)
        session.commit()
        return rotation

    def _revoke_where(self, condition) -> None:  # noqa: ANN001 - a SQL expression
        self.session.execute(update(RefreshToken).where(condition, RefreshToken.revoked_at.is_(None))
                          .values(revoked_at=utcnow()))

    def revoke(self, token: str) -> None:
        row = self.session.exec(select(RefreshToken).where(
            RefreshToken.token_hash == hash_opaque_token(token))).first()
        if row is not None:
            self.revoke_family(row.family_id)

    def revoke_family(self, family_id: uuid.UUID) -> None:
        self._revoke_where(RefreshToken.family_id == family_id)
        self.session.commit()

    def revoke_user(self, user_id: uuid.UUID) -> None:
        self._revoke_where(RefreshToken.user_id == user_id)
        self.session.commit()


# Rotation in one server-side step. KEYS[1]: the presented token's key, KEYS[2]: its successor's key.
# ARGV[1]: TTL of the successor and of a revocation mark (seconds), ARGV[2]: key prefix of families.
_ROTATE = """
local t = redis.call('HGETALL', KEYS[1])
if #t == 0 then return {'missing'} end
local h = {}
for i = 1, #t, 2 do h[t[i]] = t[i + 1] end
local famkey = ARGV[2] .. h['fam']
if redis.call('EXISTS', famkey) == 1 then return {'revoked'} end
if h['used'] == '1' then
  redis.call('SET', famkey, 'revoked', 'EX', ARGV[1])
  return {'reused'}
end
redis.call('HSET', KEYS[1], 'used', '1')
redis.call('HSET', KEYS[2], 'user', h['user'], 'fam', h['fam'], 'ver', h['ver'], 'used', '0')
redis.call('EXPIRE', KEYS[2], ARGV[1])
return {'ok', h['user'], h['fam'], h['ver']}
"""


class RedisRefreshStore:
    """Refresh tokens in Redis.

    Keys: ``tf:rt:<sha256>`` (hash: ``user``, ``fam``, ``ver``, ``used``; expires with the token, so a used
    token is remembered, and its reuse detected, for as long as it could have been valid),
    ``tf:rtfam:<family>`` (present when the family is revoked), ``tf:rtuser:<user>`` (the user's families).
    """

    PREFIX = "tf:rt:"
    FAMILY = "tf:rtfam:"
    USER = "tf:rtuser:"

    def __init__(self, client) -> None:  # noqa: ANN001 - redis.Redis
        self.client = client
        self._rotate = client.register_script(_ROTATE)

    def _ttl_s(self) -> int:
        return int(_ttl().total_seconds())

    def issue(self, *, user_id: uuid.UUID, token_version: int, family_id: uuid.UUID | None = None) -> str:
        token, digest = new_opaque_token()
        family = family_id or uuid.uuid4()
        ttl = self._ttl_s()
        pipe = self.client.pipeline()
        pipe.hset(self.PREFIX + digest, mapping={"user": str(user_id), "fam": str(family),
                                                 "ver": str(token_version), "used": "0"})
        pipe.expire(self.PREFIX + digest, ttl)
        pipe.sadd(self.USER + str(user_id), str(family))
        pipe.expire(self.USER + str(user_id), ttl)
        pipe.execute()
        return token

    def rotate(self, token: str) -> Rotation:
        successor, digest = new_opaque_token()
        reply = self._rotate(keys=[self.PREFIX + hash_opaque_token(token), self.PREFIX + digest],
                             args=[self._ttl_s(), self.FAMILY])
        status = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
        if status == "missing":
            raise RefreshTokenError()
        if status == "revoked":
            raise RefreshTokenError("refresh token revoked; sign in again")
        if status == "reused":
            raise RefreshTokenError(REUSED)
        user, family, version = (v.decode() for v in reply[1:4])
        return Rotation(user_id=uuid.UUID(user), token_version=int(version), family_id=uuid.UUID(family),
                        refresh_token=successor)

    def revoke(self, token: str) -> None:
        family = self.client.hget(self.PREFIX + hash_opaque_token(token), "fam")
        if family is not None:
            self.revoke_family(uuid.UUID(family.decode()))

    def revoke_family(self, family_id: uuid.UUID) -> None:
        self.client.set(self.FAMILY + str(family_id), "revoked", ex=self._ttl_s())

    def revoke_user(self, user_id: uuid.UUID) -> None:
        families = self.client.smembers(self.USER + str(user_id))
        if families:
            pipe = self.client.pipeline()
            for family in families:
                pipe.set(self.FAMILY + family.decode(), "revoked", ex=self._ttl_s())
            pipe.execute()


@lru_cache
def _redis_client(url: str):  # noqa: ANN202
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)


def get_refresh_store(session: Session) -> RefreshStore:
    """The store of the current settings: Redis when ``REDIS_URL`` is set, else the database."""
    url = get_settings().REDIS_URL
    if url:
        return RedisRefreshStore(_redis_client(url))
    return DatabaseRefreshStore(session)
