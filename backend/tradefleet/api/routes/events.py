"""Tickets for the live event stream (authenticated). The stream itself is public
(:mod:`tradefleet.api.routes.event_stream`): ``EventSource`` cannot send a bearer token."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from tradefleet.api.deps import CurrentUser
from tradefleet.events import issue_ticket

router = APIRouter(prefix="/events", tags=["events"])


class EventTicket(BaseModel):
    ticket: str
    expires_in: int
    """Seconds the ticket stays valid; it opens one stream, once."""


@router.post("/ticket", response_model=EventTicket)
def create_ticket(user: CurrentUser) -> EventTicket:
    """A short-lived, single-use ticket for ``GET /api/v1/events/stream?ticket=...`` (the current user's
    channel). Ask for a new one for every (re)connection."""
    ticket, ttl = issue_ticket(user.id)
    return EventTicket(ticket=ticket, expires_in=ttl)
