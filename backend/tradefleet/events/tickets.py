"""Stream tickets: how ``GET /events/stream`` knows whose stream it opens.

``EventSource`` cannot send an ``Authorization`` header, so ``POST /events/ticket`` (authenticated)
returns a ticket for ``GET /events/stream?ticket=``: a JWT (HS256, ``JWT_SECRET_KEY``) of type ``events``
with its own audience, so it is never an access token and no access token is a ticket. It carries the
user's ``token_version`` (``ver``: a ticket issued before a password change opens nothing), is valid
``EVENTS_TICKET_TTL_S`` and usable once: its ``jti`` is marked used in the cache (Redis, or the API
process's memory in embedded mode, which runs one API process).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from tradefleet.config import get_settings

TICKET_TYPE = "events"
TICKET_AUDIENCE = "tradefleet:events"


class TicketError(Exception):
    """A ticket that must not open a stream (malformed, forged, expired, already used). The message is
    safe to show."""


@dataclass(frozen=True)
class Ticket:
    """A redeemed ticket: whose stream it opens and the ``token_version`` it was issued under."""

    user_id: uuid.UUID
    token_version: int


def issue_ticket(user_id: uuid.UUID, token_version: int) -> tuple[str, int]:
    """A signed single-use ticket for ``user_id``'s stream, issued under ``token_version``, and its
    lifetime in seconds."""
    settings = get_settings()
    now = datetime.now(UTC)
    ttl = settings.EVENTS_TICKET_TTL_S
    claims = {"sub": str(user_id), "ver": str(token_version), "aud": TICKET_AUDIENCE, "type": TICKET_TYPE, "iat": now,
              "exp": now + timedelta(seconds=ttl), "jti": uuid.uuid4().hex}
    return jwt.encode(claims, settings.JWT_SECRET_KEY.get_secret_value(), algorithm="HS256"), ttl


def redeem_ticket(ticket: str) -> Ticket:
    """The user and ``token_version`` of a valid, unused ticket, which is now used. Raises
    :class:`TicketError` (also for a ticket without ``ver``)."""
    from tradefleet.cache import get_cache

    settings = get_settings()
    try:
        claims = jwt.decode(ticket, settings.JWT_SECRET_KEY.get_secret_value(), algorithms=["HS256"],
                            audience=TICKET_AUDIENCE, options={"require": ["sub", "ver", "exp", "aud", "jti", "type"]})
    except jwt.ExpiredSignatureError as exc:
        raise TicketError("ticket expired") from exc
    except jwt.PyJWTError as exc:
        raise TicketError("invalid ticket") from exc
    if claims.get("type") != TICKET_TYPE:
        raise TicketError("invalid ticket")
    try:
        user_id = uuid.UUID(str(claims["sub"]))
        version = int(str(claims["ver"]))
    except ValueError as exc:
        raise TicketError("invalid ticket") from exc
    if not get_cache().add(f"events:ticket:{claims['jti']}", b"1", settings.EVENTS_TICKET_TTL_S + 60):
        raise TicketError("ticket already used")
    return Ticket(user_id=user_id, token_version=version)


__all__ = ["TICKET_AUDIENCE", "TICKET_TYPE", "Ticket", "TicketError", "issue_ticket", "redeem_ticket"]
