"""Password hashing with argon2 through passlib (the maintained fork ``libpass``, imported as ``passlib``).

Hashes are self-describing PHC strings (``$argon2id$v=19$m=...,t=...,p=...$salt$hash``), so the cost
parameters can be raised later: :func:`verify_and_update` tells the caller when a stored hash should be
replaced.
"""

from __future__ import annotations

from functools import lru_cache

from passlib.context import CryptContext

pwd_context = CryptContext(schemes=["argon2"], deprecated="auto")


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (a fresh random salt each call)."""
    return pwd_context.hash(password)


def verify_password(password: str, hashed_password: str) -> bool:
    """True when ``password`` matches ``hashed_password``; False for a wrong password or an unknown hash."""
    try:
        return pwd_context.verify(password, hashed_password)
    except (ValueError, TypeError):  # malformed or foreign hash: treat as a mismatch, never a 500
        return False


def verify_and_update(password: str, hashed_password: str) -> tuple[bool, str | None]:
    """``(matches, new_hash)``: ``new_hash`` is set when the password matched but the stored hash uses
    outdated parameters and should be replaced (passlib's ``CryptContext.verify_and_update``)."""
    try:
        return pwd_context.verify_and_update(password, hashed_password)
    except (ValueError, TypeError):
        return False, None


@lru_cache(maxsize=1)
def dummy_hash() -> str:
    """A hash of a random throw-away password with the current parameters, computed once.

    Used when a login names an unknown e-mail: verifying against it costs the same as a real check,
    so response times do not reveal which e-mails are registered.
    """
    import secrets

    return hash_password(secrets.token_urlsafe(32))
