"""Live updates: what a trader's browser sees change, published after commit to the owner's channel.

Publishers (the engine's tick, run start and stop, backtests) collect events in an :class:`Outbox`
while their transaction runs and call :meth:`Outbox.publish` **after** the commit, so a browser never
hears of a row that was rolled back. Publishing never raises: a lost live update costs a trader a
refresh, a failed tick would cost them a candle.

Kinds (``event:`` of the SSE stream) and their ``data`` (JSON; every payload names its ``run_id``, or
``backtest_id`` for backtests):

- ``candle``   ``{run_id, time_ms, open, high, low, close, volume}``: a candle the run evaluated.
- ``equity``   ``{run_id, candle_ms, equity, cash, position_amount, price}``: its snapshot at a close.
- ``order``    ``{run_id, order: OrderPublic}``: an order placed, filled, rejected or cancelled.
- ``fill``     ``{run_id, fill: FillPublic}``.
- ``trade``    ``{run_id, trade: TradePublic}``: a round trip opened or closed.
- ``status``   ``{run_id, status, status_reason}``: started, stopped, paused.
- ``log``      ``{run_id, event: RunEventPublic}``: every run event (strategy log lines, fills, skips).
- ``backtest`` ``{backtest_id, status, progress, stage, error}``.
- ``session``  ``{token_version}``: the user's sessions changed (:mod:`tradefleet.stream_slots`); read by the
  stream itself, never forwarded to the browser.

Transport:

- **With Redis** (``REDIS_URL``): one Lua call per user appends each event to the stream
  ``events:user:<id>`` (capped at ``EVENTS_STREAM_MAXLEN``, expiring after ``EVENTS_RETENTION_S``) and
  ``PUBLISH``-es it, with its stream id, on the channel ``user:<id>``. A reader subscribes to the channel,
  then replays the stream after the ``Last-Event-ID`` it was given, so a reconnecting browser misses
  nothing and sees nothing twice.
- **Without Redis** (the embedded ``make run``: SQLite, the worker and the API in different processes):
  events are rows of ``live_event``; the stream polls that table for the user's rows after the last id
  every ``EVENTS_POLL_S`` (server-side, one indexed query; the browser still holds one SSE connection).
  Rows older than ``EVENTS_RETENTION_S`` are pruned by publishers.

Tickets: ``EventSource`` cannot send an ``Authorization`` header, so ``POST /events/ticket`` (authenticated)
returns a ticket for ``GET /events/stream?ticket=``: a JWT of type ``events`` (its own audience, so it is
never an access token and no access token is a ticket) carrying the user's ``token_version`` (``ver``: a
ticket issued before a password change opens nothing), valid ``EVENTS_TICKET_TTL_S`` and usable once
(its ``jti`` is marked used in the cache: Redis, or the API process's memory in embedded mode, which runs
one API process).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import jwt

from tradefleet.config import get_settings

log = logging.getLogger(__name__)

KINDS = frozenset({"candle", "order", "fill", "trade", "status", "log", "equity", "backtest", "strategy",
                   "session"})
TICKET_TYPE = "events"
TICKET_AUDIENCE = "tradefleet:events"
_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


def channel(user_id: uuid.UUID | str) -> str:
    """The pub/sub channel of a user: ``user:<id>``."""
    return f"user:{user_id}"


def stream_key(user_id: uuid.UUID | str) -> str:
    """The Redis stream that keeps a user's recent events for resuming: ``events:user:<id>``."""
    return f"events:user:{user_id}"


def jsonable(value: Any) -> Any:
    """``value`` with UUIDs, datetimes and enums as JSON strings (payloads are plain JSON)."""
    return json.loads(json.dumps(value, default=_default))


def _default(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value"):  # enums
        return value.value
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# --- publishing -------------------------------------------------------------------------------------


@dataclass
class Outbox:
    """Events of one transaction, per user, in order; :meth:`publish` them after the commit."""

    items: dict[uuid.UUID, list[tuple[str, dict[str, Any]]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, user_id: uuid.UUID, kind: str, data: dict[str, Any]) -> None:
        """Queue ``kind`` with ``data`` (JSON-able after :func:`jsonable`) for ``user_id``'s channel."""
        if kind not in KINDS:
            raise ValueError(f"unknown live event kind {kind!r}")
        self.items[user_id].append((kind, data))

    def __len__(self) -> int:
        return sum(len(v) for v in self.items.values())

    def publish(self) -> int:
        """Publish everything queued (then forget it); returns how many events were published. Never
        raises: a failure is logged and the events are dropped."""
        items, self.items = self.items, defaultdict(list)
        return publish_all(items)


def publish(user_id: uuid.UUID, kind: str, data: dict[str, Any]) -> int:
    """Publish one event now (call after the commit of the change it describes)."""
    box = Outbox()
    box.add(user_id, kind, data)
    return box.publish()


def publish_all(items: Mapping[uuid.UUID, list[tuple[str, dict[str, Any]]]]) -> int:
    """Publish events per user; returns the count. Never raises."""
    items = {u: e for u, e in items.items() if e}
    if not items:
        return 0
    try:
        if get_settings().REDIS_URL:
            return _publish_redis(items)
        return _publish_db(items)
    except Exception:  # noqa: BLE001 - live updates are best effort; the rows are committed
        log.warning("could not publish %d live events", sum(map(len, items.values())), exc_info=True)
        return 0


# One round trip per user: append to the stream, publish with the stream id, refresh the expiry.
_LUA_PUBLISH = """
local n = 0
for i = 3, #ARGV, 2 do
  local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'k', ARGV[i], 'd', ARGV[i + 1])
  redis.call('PUBLISH', KEYS[2], id .. '\\n' .. ARGV[i] .. '\\n' .. ARGV[i + 1])
  n = n + 1
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return n
"""


@lru_cache(maxsize=4)
def _redis_client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3)


@lru_cache(maxsize=4)
def _redis_script(url: str) -> Any:
    return _redis_client(url).register_script(_LUA_PUBLISH)


def _publish_redis(items: Mapping[uuid.UUID, list[tuple[str, dict[str, Any]]]]) -> int:
    settings = get_settings()
    url = settings.REDIS_URL
    script = _redis_script(url)
    pipe = _redis_client(url).pipeline(transaction=False)
    for user_id, events in items.items():
        args: list[Any] = [settings.EVENTS_STREAM_MAXLEN, settings.EVENTS_RETENTION_S]
        for kind, data in events:
            args += [kind, json.dumps(data, default=_default, separators=(",", ":"))]
        script(keys=[stream_key(user_id), channel(user_id)], args=args, client=pipe)
    return int(sum(pipe.execute()))


def _publish_db(items: Mapping[uuid.UUID, list[tuple[str, dict[str, Any]]]]) -> int:
    from sqlalchemy import delete, insert

    from tradefleet.db import session_scope
    from tradefleet.models import LiveEvent
    from tradefleet.models._types import utcnow

    now = utcnow()
    rows = [dict(user_id=user_id, kind=kind, data=jsonable(data), created_at=now)
            for user_id, events in items.items() for kind, data in events]
    with session_scope() as session:
        session.execute(insert(LiveEvent), rows)
        if random.random() < 0.02:  # prune now and then, not on every tick
            cutoff = now - timedelta(seconds=get_settings().EVENTS_RETENTION_S)
            session.execute(delete(LiveEvent).where(LiveEvent.created_at < cutoff))
        session.commit()
    return len(rows)


# --- tickets ----------------------------------------------------------------------------------------


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
    except jwt.ExpiredSignatureError:
        raise TicketError("ticket expired") from None
    except jwt.PyJWTError:
        raise TicketError("invalid ticket") from None
    if claims.get("type") != TICKET_TYPE:
        raise TicketError("invalid ticket")
    try:
        user_id = uuid.UUID(str(claims["sub"]))
        version = int(str(claims["ver"]))
    except ValueError:
        raise TicketError("invalid ticket") from None
    if not get_cache().add(f"events:ticket:{claims['jti']}", b"1", settings.EVENTS_TICKET_TTL_S + 60):
        raise TicketError("ticket already used")
    return Ticket(user_id=user_id, token_version=version)


# --- reading a user's channel -----------------------------------------------------------------------


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
