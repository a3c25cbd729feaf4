"""Encryption of small secrets at rest (today: TOTP secrets) with ``cryptography``'s MultiFernet.

Keys, in this order:

1. ``TOTP_ENCRYPTION_KEY`` (one Fernet key), if set, encrypts; the ``API_ENCRYPTION_KEYS`` still decrypt;
2. else the ``API_ENCRYPTION_KEYS`` (newest first: the first encrypts, all decrypt, so keys rotate);
3. else, outside production only, a key derived from ``JWT_SECRET_KEY`` with HKDF-SHA256 (so ``make run``
   and the tests need no extra setting). Production refuses to start without ``API_ENCRYPTION_KEYS``
   (:func:`tradefleet.config.production_problems`), so this fallback never protects real data.

Fernet is AES-128-CBC with HMAC-SHA256 and a timestamp: a tampered or foreign ciphertext fails to
decrypt (:class:`CryptoError`), it never decrypts to garbage.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tradefleet.config import get_settings


class CryptoError(Exception):
    """A ciphertext that no configured key can decrypt (wrong key, rotated away, or tampered with)."""


def _derived_key(secret: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"tradefleet totp secret encryption")
    return base64.urlsafe_b64encode(hkdf.derive(secret.encode()))


def secrets_fernet() -> MultiFernet:
    """The MultiFernet of the current settings (see the module docstring for the key order)."""
    settings = get_settings()
    keys: list[bytes] = []
    if settings.TOTP_ENCRYPTION_KEY is not None and settings.TOTP_ENCRYPTION_KEY.get_secret_value():
        keys.append(settings.TOTP_ENCRYPTION_KEY.get_secret_value().encode())
    keys += [k.get_secret_value().encode() for k in getattr(settings, "API_ENCRYPTION_KEYS", [])]
    if not keys:
        keys.append(_derived_key(settings.JWT_SECRET_KEY.get_secret_value()))
    return MultiFernet([Fernet(k) for k in keys])


def encrypt(plaintext: str) -> str:
    """``plaintext`` encrypted with the first key: a urlsafe base64 Fernet token (str)."""
    return secrets_fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    """The plaintext of :func:`encrypt`'s output; :class:`CryptoError` when no key fits."""
    try:
        return secrets_fernet().decrypt(ciphertext.encode()).decode()
    except (InvalidToken, ValueError, TypeError) as exc:
        raise CryptoError("cannot decrypt: no configured key matches") from exc


def rotate(ciphertext: str) -> str:
    """``ciphertext`` re-encrypted with the first key (MultiFernet.rotate)."""
    try:
        return secrets_fernet().rotate(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise CryptoError("cannot decrypt: no configured key matches") from exc
