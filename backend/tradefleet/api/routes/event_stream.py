"""The live event stream of one user: ``GET /api/v1/events/stream?ticket=...`` (server-sent events).

Public router, on purpose: ``EventSource`` cannot send an ``Authorization`` header, so the stream is
authorised by a ticket from ``POST /api/v1/events/ticket`` (authenticated, single use, short-lived: see
:mod:`tradefleet.events`) instead of the bearer token. The ticket names the user; the stream carries that
user's channel only.

Reply: ``text/event-stream`` (``X-Accel-Buffering: no``, ``Cache-Control: no-store``). First an event
``ready`` (``data: {"last_event_id": ...}``, sent once the subscription is live, with ``retry: 3000``),
then the channel's events, each with ``id:``, ``event:`` (``candle``, ``order``, ``fill``, ``trade``,
``status``, ``log``, ``equity``, ``backtest``) and ``data:`` (JSON naming its ``run_id`` or
``backtest_id``), and a heartbeat comment every ``EVENTS_HEARTBEAT_S`` seconds. The stream ends when the
user is deactivated.

Resuming: pass the last ``id`` seen as the ``Last-Event-ID`` header or as ``?last_event_id=`` (a
reconnecting page needs a new ticket, so it opens a new ``EventSource`` and uses the query parameter);
events after it are replayed (those kept, ``EVENTS_RETENTION_S``). An unknown id starts from now.

Errors: 401 for a missing, malformed, expired or already used ticket, or a deactivated user.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, Header, HTTPException, Query, status
from sse_starlette import EventSourceResponse, ServerSentEvent

from tradefleet.config import get_settings
from tradefleet.db import session_scope
from tradefleet.events import TicketError, read_channel, redeem_ticket, valid_last_id
from tradefleet.models import User

router = APIRouter(prefix="/events", tags=["events"])

USER_CHECK_EVERY_S = 15.0


def _user_active(user_id: uuid.UUID) -> bool:
    with session_scope() as session:
        user = session.get(User, user_id)
        return bool(user is not None and user.is_active)


@router.get("/stream", response_class=EventSourceResponse)
async def event_stream(
    ticket: str = Query(..., min_length=1, max_length=4096, description="from POST /api/v1/events/ticket"),
    last_event_id: str | None = Query(None, max_length=64, description="resume after this event id"),
    last_event_id_header: str | None = Header(None, alias="Last-Event-ID", max_length=64),
) -> EventSourceResponse:
    """Server-sent events of the ticket's user (see the module docstring for the format)."""
    try:
        user_id = redeem_ticket(ticket)
    except TicketError as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=str(exc)) from None
    if not await asyncio.to_thread(_user_active, user_id):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="could not validate credentials")
    settings = get_settings()
    resume = valid_last_id(last_event_id_header or last_event_id)

    async def events() -> AsyncIterator[ServerSentEvent]:
        ready = False
        checked = time.monotonic()
        async for item in read_channel(user_id, resume, idle_s=settings.EVENTS_HEARTBEAT_S):
            if not ready:
                # The reader yields None right after subscribing: from here on nothing is missed.
                ready = True
                yield ServerSentEvent(event="ready", data=json.dumps({"last_event_id": resume}), retry=3000)
                if item is None:
                    continue
            if item is None or time.monotonic() - checked >= USER_CHECK_EVERY_S:
                checked = time.monotonic()
                if not await asyncio.to_thread(_user_active, user_id):
                    return
                if item is None:
                    continue
            yield ServerSentEvent(id=item.id, event=item.kind, data=item.data)

    return EventSourceResponse(events(), ping=settings.EVENTS_HEARTBEAT_S,
                               headers={"X-Accel-Buffering": "no", "Cache-Control": "no-store"})
