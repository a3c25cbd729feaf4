"""TOTP two-factor codes (RFC 6238, through pyotp): secrets, otpauth URIs, QR codes, recovery codes.

Pure functions; the service (:mod:`tradefleet.services.auth`) stores the encrypted secret, the last
accepted time step (so a code is never accepted twice) and the recovery codes' hashes.

Codes are 6 digits, 30-second steps, SHA-1 (what every authenticator app supports). A code of the
previous or next step is also accepted (``VALID_WINDOW``), for clocks a few seconds apart.
"""

from __future__ import annotations

import hashlib
import io
import re
import secrets
import time

import pyotp
import segno

INTERVAL_S = 30
DIGITS = 6
VALID_WINDOW = 1
RECOVERY_CODE_COUNT = 10
_CODE = re.compile(r"^\d{6}$")
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper without mistakes


def new_secret() -> str:
    """A fresh random base32 secret (160 bits, as RFC 4226 recommends)."""
    return pyotp.random_base32(length=32)


def otpauth_uri(secret: str, *, email: str, issuer: str) -> str:
    """The ``otpauth://totp/...`` URI authenticator apps import (Google's Key Uri Format)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL_S).provisioning_uri(name=email, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """``uri`` as a QR code, an SVG document (str), made by segno (pure Python)."""
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", scale=4, xmldecl=False)
    return out.getvalue().decode()


def current_step(at_s: float | None = None) -> int:
    """The TOTP time step of ``at_s`` (epoch seconds; default now): ``floor(t / 30)``."""
    return int((time.time() if at_s is None else at_s) // INTERVAL_S)


def matching_step(secret: str, code: str, *, at_s: float | None = None) -> int | None:
    """The time step (within ``VALID_WINDOW`` of now) whose code is ``code``, or None.

    The caller must refuse a step not later than the last one it accepted: that is what makes a code
    single-use (RFC 6238 section 5.2).
    """
    code = code.strip().replace(" ", "")
    if not _CODE.match(code):
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL_S)
    now_step = current_step(at_s)
    for step in range(now_step + VALID_WINDOW, now_step - VALID_WINDOW - 1, -1):
        if secrets.compare_digest(totp.at(step * INTERVAL_S), code):
            return step
    return None


def new_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    """``count`` codes like ``k7pq-3xv9-mt2h-w8rc`` (16 characters of a 31-letter alphabet: 79 bits)."""
    def one() -> str:
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(16))
        return "-".join(raw[i:i + 4] for i in range(0, 16, 4))
    return [one() for _ in range(count)]


def normalise_recovery_code(code: str) -> str:
    """Lower-cased, without spaces and dashes: how a typed recovery code is compared."""
    return re.sub(r"[\s-]", "", code).lower()


def hash_secret(value: str) -> str:
    """SHA-256 hex of ``value``: how random tokens and recovery codes are stored (see ``models/auth.py``)."""
    return hashlib.sha256(value.encode()).hexdigest()
