"""Annotated types for what clients send: bounded numbers, bounded dates, and strings without hidden
characters. Request bodies use them so that a bad value is a 422 naming the field, never an overflow or
a NUL byte inside the database.

* :data:`StrictFloat`, :data:`StrictBool`, :data:`StrictInt`: no coercion (``"100"`` or ``true`` for a
  number, ``"yes"`` or ``1`` for a bool are 422); a float also takes a JSON integer.
* :data:`BoundedInt`: a 64-bit-safe integer, ``|value| <= MAX_INT``.
* :data:`BoundedDatetime`: an ISO 8601 date and time between :data:`MIN_YEAR` and :data:`MAX_YEAR`,
  returned timezone-aware in UTC (a time without a zone is UTC); years outside, or a zone offset that
  would push it past ``datetime.min`` / ``datetime.max``, are 422, never ``OverflowError``.
* :data:`Label` (one line: names, labels) and :data:`Text` (may hold newlines and tabs: reasons,
  descriptions): refuse NUL, lone UTF-16 surrogates, C0/C1 control characters and the bidi overrides
  U+202A..U+202E, U+2066..U+2069 (they make a label read differently from what it is).
* :data:`SafeEmail`: an e-mail address (``EmailStr``) that passed the same check first.

:func:`unsafe_character` is the check itself, shared with the input guard middleware
(:mod:`tradefleet.api.validation`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, EmailStr, Field, Strict

MIN_YEAR = 2000
"""Earliest year of a date a client may send (no market data is older)."""
MAX_YEAR = 2999
"""Latest year of a date a client may send (epoch ms stay far inside 64 bits)."""
MAX_INT = 2**53
"""Largest magnitude of an integer in a body: exact in a JavaScript number, inside a PostgreSQL bigint."""

_BIDI = {0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069}


def unsafe_character(text: str, *, allow_newlines: bool = False, allow_bidi: bool = False) -> str | None:
    """Why ``text`` cannot be stored, or None when it can.

    Refused: NUL, lone surrogates (U+D800..U+DFFF), C0 controls (U+0000..U+001F, except tab, LF and CR
    with ``allow_newlines``), DEL and C1 controls (U+007F..U+009F) and, unless ``allow_bidi``, bidi
    overrides/isolates.
    Returns a message such as ``"contains a control character (U+0000)"``.
    """
    for char in text:
        code = ord(char)
        if code == 0:
            return "contains a NUL character (U+0000)"
        if 0xD800 <= code <= 0xDFFF:
            return f"contains a lone surrogate (U+{code:04X})"
        if code < 0x20:
            if allow_newlines and char in "\t\n\r":
                continue
            return f"contains a control character (U+{code:04X})"
        if 0x7F <= code <= 0x9F:
            return f"contains a control character (U+{code:04X})"
        if code in _BIDI and not allow_bidi:
            return f"contains a bidirectional override (U+{code:04X})"
    return None


def _clean_line(value: Any) -> Any:
    if isinstance(value, str) and (reason := unsafe_character(value)):
        raise ValueError(reason)
    return value


def _clean_text(value: Any) -> Any:
    if isinstance(value, str) and (reason := unsafe_character(value, allow_newlines=True)):
        raise ValueError(reason)
    return value


def _bounded_datetime(value: datetime) -> datetime:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"a date between the years {MIN_YEAR} and {MAX_YEAR}")
    try:
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError(f"a date between the years {MIN_YEAR} and {MAX_YEAR}") from None
    if not MIN_YEAR <= aware.year <= MAX_YEAR:
        raise ValueError(f"a date between the years {MIN_YEAR} and {MAX_YEAR}")
    return aware


def check_datetime(value: datetime) -> datetime:
    """``value`` in UTC (naive means UTC); ``ValueError`` outside the years MIN_YEAR..MAX_YEAR."""
    return _bounded_datetime(value)


LINE_PATTERN = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
"""The OpenAPI ``pattern`` of a :data:`Label`: no control characters, no bidi overrides."""
TEXT_PATTERN = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
"""The OpenAPI ``pattern`` of a :data:`Text`: as a label, but tab, LF and CR are allowed."""
PLAIN_LINE_PATTERN = "^[^\\x00-\\x1f\\x7f-\\x9f]*$"
"""The OpenAPI ``pattern`` of any query, path or form value (the input guard's rule)."""
PLAIN_TEXT_PATTERN = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$"
"""The OpenAPI ``pattern`` of any other string in a JSON body (the input guard's rule)."""

StrictFloat = Annotated[float, Strict()]
StrictInt = Annotated[int, Strict()]
StrictBool = Annotated[bool, Strict()]
BoundedInt = Annotated[int, Strict(), Field(ge=-MAX_INT, le=MAX_INT)]
BoundedDatetime = Annotated[datetime, AfterValidator(_bounded_datetime)]
Label = Annotated[str, Strict(), BeforeValidator(_clean_line), Field(json_schema_extra={"pattern": LINE_PATTERN})]
Text = Annotated[str, Strict(), BeforeValidator(_clean_text), Field(json_schema_extra={"pattern": TEXT_PATTERN})]
SafeEmail = Annotated[EmailStr, BeforeValidator(_clean_line)]

__all__ = ["MAX_INT", "MAX_YEAR", "MIN_YEAR", "BoundedDatetime", "BoundedInt", "Label", "SafeEmail",
           "StrictBool", "StrictFloat", "StrictInt", "Text", "check_datetime", "unsafe_character"]
