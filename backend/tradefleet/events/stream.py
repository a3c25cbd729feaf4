"""Reading a user's live updates, for ``GET /events/stream`` (:mod:`tradefleet.api.routes.event_stream`).

- **With Redis**: the reader subscribes to the channel ``user:<id>`` first, then replays the stream
  ``events:user:<id>`` after the ``Last-Event-ID`` it was given and drops what it already replayed by id,
  so a reconnecting browser misses nothing and sees nothing twice. Ids are stream ids (``<ms>-<seq>``).
- **Without Redis**: it polls ``live_event`` for the user's rows after the last id every ``EVENTS_POLL_S``
  (server-side, one indexed query; the browser still holds one SSE connection). Ids are row ids.

Events are read as they were written by :mod:`tradefleet.events.outbox`: a kind and its ``data`` JSON
(:mod:`tradefleet.events.updates`), passed on untouched.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from tradefleet.config import get_settings
from tradefleet.events.channels import channel, stream_key

_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


@dataclass(frozen=True)
class Delivered:
    """One event read from a channel: ``id`` for ``Last-Event-ID``, ``kind``, ``data`` (a JSON string)."""

    id: str
    kind: str
    data: str


def valid_last_id(value: str | None) -> str | None:
    """``value`` if it is an event id of the current transport, else None (start from now)."""
    if not value:
        return None
    value = value.strip()
    if get_settings().REDIS_URL:
        return value if _STREAM_ID.match(value) else None
    return value if value.isdigit() and len(value) < 19 else None


async def read_channel(user_id: uuid.UUID, last_id: str | None, *, idle_s: float) -> AsyncIterator[Delivered | None]:
    """The user's events from after ``last_id`` (from now when None), forever. Yields ``None`` once as
    soon as it listens (nothing published from then on is missed), then after every ``idle_s`` without
    an event so the caller can check on the connection."""
    if get_settings().REDIS_URL:
        async for item in _read_redis(user_id, last_id, idle_s=idle_s):
            yield item
    else:
        async for item in _read_db(user_id, last_id, idle_s=idle_s):
            yield item


def _id_key(stream_id: str) -> tuple[int, int]:
    ms, seq = stream_id.split("-", 1)
    return int(ms), int(seq)


async def _read_redis(user_id: uuid.UUID, last_id: str | None, *, idle_s: float) -> AsyncIterator[Delivered | None]:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(get_settings().REDIS_URL)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(channel(user_id))  # first, so nothing published during the replay is lost
        yield None  # subscribed: the caller may announce the stream as ready
        last = last_id
        if last_id is not None:
            while True:  # page through everything kept after last_id (up to EVENTS_STREAM_MAXLEN)
                page = await client.xrange(stream_key(user_id), min="(" + last, max="+", count=500)
                for entry_id, fields in page:
                    entry = entry_id.decode()
                    yield Delivered(entry, fields[b"k"].decode(), fields[b"d"].decode())
                    last = entry
                if len(page) < 500:
                    break
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=idle_s)
            if message is None:
                yield None
                continue
            if message.get("type") != "message":
                continue
            entry, kind, data = message["data"].decode().split("\n", 2)
            if last is not None and _id_key(entry) <= _id_key(last):
                continue  # already replayed from the stream
            last = entry
            yield Delivered(entry, kind, data)
    finally:
        try:
            await pubsub.unsubscribe()
            await pubsub.aclose()
        finally:
            await client.aclose()


def _db_rows(user_id: uuid.UUID, after: int | None) -> tuple[list[Delivered], int]:
    from sqlalchemy import func, select

    from tradefleet.db import session_scope
    from tradefleet.models import LiveEvent

    with session_scope() as session:
        table = LiveEvent.__table__
        if after is None:
            latest = session.execute(select(func.max(table.c.id)).where(table.c.user_id == user_id)).scalar()
            return [], int(latest or 0)
        rows = session.execute(select(table.c.id, table.c.kind, table.c.data)
                               .where(table.c.user_id == user_id, table.c.id > after)
                               .order_by(table.c.id).limit(500)).all()
    events = [Delivered(str(r.id), r.kind, json.dumps(r.data, separators=(",", ":"))) for r in rows]
    return events, (rows[-1].id if rows else after)


async def _read_db(user_id: uuid.UUID, last_id: str | None, *, idle_s: float) -> AsyncIterator[Delivered | None]:
    poll = get_settings().EVENTS_POLL_S
    after = int(last_id) if last_id is not None else None
    if after is None:
        _, after = await asyncio.to_thread(_db_rows, user_id, None)
    yield None  # positioned: the caller may announce the stream as ready
    idle = 0.0
    while True:
        events, after = await asyncio.to_thread(_db_rows, user_id, after)
        for event in events:
            yield event
        if events:
            idle = 0.0
            continue
        await asyncio.sleep(poll)
        idle += poll
        if idle >= idle_s:
            idle = 0.0
            yield None


__all__ = ["Delivered", "read_channel", "valid_last_id"]
