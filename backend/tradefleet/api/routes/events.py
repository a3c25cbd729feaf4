"""Tickets for the live event stream (authenticated). The stream itself is public
(:mod:`tradefleet.api.routes.event_stream`): ``EventSource`` cannot send a bearer token."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel

from tradefleet.api.deps import CurrentUser
from tradefleet.config import get_settings
from tradefleet.events.tickets import issue_ticket
from tradefleet.stream_slots import StreamLimitReached, open_count

router = APIRouter(prefix="/events", tags=["events"])


class EventTicket(BaseModel):
    ticket: str
    expires_in: int
    """Seconds the ticket stays valid; it opens one stream, once."""


@router.post("/ticket", response_model=EventTicket)
async def create_ticket(user: CurrentUser) -> EventTicket:
    """A short-lived, single-use ticket for ``GET /api/v1/events/stream?ticket=...`` (the current user's
    channel, under their current ``token_version``). Ask for a new one for every (re)connection.

    429 (detail naming ``STREAM_MAX_PER_USER``) while the user already holds that many open streams; the
    stream itself enforces the limit too, since tickets taken in parallel may all see room."""
    if await asyncio.to_thread(open_count, user.id) >= get_settings().STREAM_MAX_PER_USER:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                            detail=str(StreamLimitReached(get_settings().STREAM_MAX_PER_USER)),
                            headers={"Retry-After": "5"})
    ticket, ttl = issue_ticket(user.id, user.token_version)
    return EventTicket(ticket=ticket, expires_in=ttl)
