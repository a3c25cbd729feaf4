"""Encryption of small secrets at rest (today: TOTP secrets) with ``cryptography``'s MultiFernet.

These are symmetric on purpose: the API checks a two-factor code at every 2FA login, so it must read
the secret, and it is allowed to hold this key (unlike the exchange-key vault's private keys,
:mod:`tradefleet.security.vault`).

Keys, in this order:

1. ``TOTP_ENCRYPTION_KEY``: newest first, the first encrypts, all decrypt (rotation:
   ``tradefleet keys rotate``). Required in production (:func:`tradefleet.config.production_problems`);
   unset elsewhere: a key generated once into ``var/dev-totp-encryption.key`` (mode 0600), shared
   by the processes of one checkout (``make run`` generates it on first start);
2. then ``API_ENCRYPTION_KEYS``, decrypting only: secrets encrypted under them before their
   re-encryption (``tradefleet keys migrate-sealed``).

Fernet is AES-128-CBC with HMAC-SHA256 and a timestamp: a tampered or foreign ciphertext fails to
decrypt (:class:`CryptoError`), it never decrypts to garbage.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from tradefleet.config import REPO_ROOT, get_settings

DEV_KEY_FILE = REPO_ROOT / "var" / "dev-totp-encryption.key"
"""The local/test key when ``TOTP_ENCRYPTION_KEY`` is unset outside production."""


class CryptoError(Exception):
    """A ciphertext that no configured key can decrypt (wrong key, rotated away, or tampered with),
    or no key at all (production without ``TOTP_ENCRYPTION_KEY``)."""


def generate_key() -> str:
    """A new Fernet key: 32 random bytes, url-safe base64 (44 characters)."""
    return Fernet.generate_key().decode()


def secrets_fernet() -> MultiFernet:
    """The MultiFernet of the current settings (see the module docstring for the key order)."""
    from tradefleet.security.secret_files import ensure_secret_file

    settings = get_settings()
    keys = [k.get_secret_value().encode() for k in settings.TOTP_ENCRYPTION_KEY]
    if not keys:
        if settings.ENVIRONMENT == "production":
            raise CryptoError("TOTP_ENCRYPTION_KEY is not set")
        keys.append(ensure_secret_file(DEV_KEY_FILE, generate_key).encode())
    keys += [k.get_secret_value().encode() for k in settings.API_ENCRYPTION_KEYS]
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
