"""The live event stream of one user: ``GET /api/v1/events/stream?ticket=...`` (server-sent events).

Public router, on purpose: ``EventSource`` cannot send an ``Authorization`` header, so the stream is
authorised by a ticket from ``POST /api/v1/events/ticket`` (authenticated, single use, short-lived: see
:mod:`tradefleet.events.tickets`) instead of the bearer token. The ticket names the user; the stream
carries that user's channel only.

Reply: ``text/event-stream`` (``X-Accel-Buffering: no``, ``Cache-Control: no-store``). First an event
``ready`` (``data: {"last_event_id": ...}``, sent once the subscription is live, with ``retry: 3000``),
then the channel's events, each with ``id:``, ``event:`` (``candle``, ``order``, ``fill``, ``trade``,
``status``, ``log``, ``equity``, ``backtest``, ``strategy``) and ``data:`` (JSON naming its ``run_id``,
``backtest_id`` or ``version_id``; each kind's shape is in :mod:`tradefleet.events.updates`), and a
heartbeat comment every ``EVENTS_HEARTBEAT_S`` seconds. The stream ends when the user's
``token_version`` is no longer the ticket's (password changed or reset, every session signed out) or the
user is deactivated: pushed on the user's channel, and checked every ``EVENTS_SESSION_CHECK_S``
(:mod:`tradefleet.stream_slots`); nothing published after such a change is delivered.

Limit: a user holds at most ``STREAM_MAX_PER_USER`` open streams at once (a leased slot each, counted in
Redis across API processes; a closed stream gives its slot back at once, a dead one when its lease ends).

Resuming: pass the last ``id`` seen as the ``Last-Event-ID`` header or as ``?last_event_id=`` (a
reconnecting page needs a new ticket, so it opens a new ``EventSource`` and uses the query parameter);
events after it are replayed (those kept, ``EVENTS_RETENTION_S``). An unknown id starts from now.

Errors: 401 for a missing, malformed, expired or already used ticket, a deactivated user, or a ticket
issued before the user's ``token_version`` changed; 429 when the user already holds
``STREAM_MAX_PER_USER`` streams (the detail names the setting; the ticket is used up).
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
from tradefleet.events.stream import read_channel, valid_last_id
from tradefleet.events.tickets import TicketError, redeem_ticket
from tradefleet.events.updates import LiveUpdateKind
from tradefleet.models import User
from tradefleet.stream_slots import StreamLimitReached, acquire, check_interval_s

router = APIRouter(prefix="/events", tags=["events"])


def _session_valid(user_id: uuid.UUID, token_version: int) -> bool:
    """True while the user exists, is active and still has the ticket's ``token_version``."""
    with session_scope() as session:
        user = session.get(User, user_id)
        return bool(user is not None and user.is_active and user.token_version == token_version)


@router.get("/stream", response_class=EventSourceResponse)
async def event_stream(
    ticket: str = Query(..., min_length=1, max_length=4096, description="from POST /api/v1/events/ticket"),
    last_event_id: str | None = Query(None, max_length=64, description="resume after this event id"),
    last_event_id_header: str | None = Header(None, alias="Last-Event-ID", max_length=64),
) -> EventSourceResponse:
    """Server-sent events of the ticket's user (see the module docstring for the format, limit and end)."""
    try:
        redeemed = redeem_ticket(ticket)
    except TicketError as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=str(exc)) from None
    user_id, version = redeemed.user_id, redeemed.token_version
    if not await asyncio.to_thread(_session_valid, user_id, version):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="could not validate credentials")
    try:
        slot = await asyncio.to_thread(acquire, user_id)
    except StreamLimitReached as exc:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, detail=str(exc),
                            headers={"Retry-After": "5"}) from None
    settings = get_settings()
    resume = valid_last_id(last_event_id_header or last_event_id)
    every_s = check_interval_s()

    async def still_open() -> bool:
        return await asyncio.to_thread(_session_valid, user_id, version) and await asyncio.to_thread(slot.renew)

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            ready = False
            checked = time.monotonic()
            async for item in read_channel(user_id, resume, idle_s=every_s):
                if not ready:
                    # The reader yields None right after subscribing: from here on nothing is missed.
                    ready = True
                    yield ServerSentEvent(event="ready", data=json.dumps({"last_event_id": resume}), retry=3000)
                    if item is None:
                        continue
                session_event = item is not None and item.kind == LiveUpdateKind.session
                if item is None or session_event or time.monotonic() - checked >= every_s:
                    checked = time.monotonic()
                    if not await still_open():
                        return
                    if item is None or session_event:
                        continue
                yield ServerSentEvent(id=item.id, event=item.kind, data=item.data)
        finally:
            # Synchronously (one short Redis call): an await here could be cancelled with the stream.
            slot.release()

    return EventSourceResponse(events(), ping=settings.EVENTS_HEARTBEAT_S,
                               headers={"X-Accel-Buffering": "no", "Cache-Control": "no-store"})
