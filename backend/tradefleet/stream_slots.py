"""Open event streams: at most ``STREAM_MAX_PER_USER`` per user, and each ends with the user's session.

Slots
    Every open ``GET /api/v1/events/stream`` holds one *slot* of its user: a lease that the stream renews
    while it runs (at every heartbeat or session check) and gives back when it ends. A stream whose
    process died gives its slot back by expiry, :func:`lease_s` seconds after its last renewal.

    - **With Redis** (``REDIS_URL``): the sorted set ``events:slots:user:<id>``, one member per slot
      scored by its lease's end (epoch ms, Redis's own clock). Taking a slot is one Lua call (drop
      expired leases, count, add below the limit), atomic across every API process, so parallel opens
      cannot pass the limit.
    - **Without Redis** (the embedded ``make run``, one API process): the same in this process's memory
      under a lock.

Session ends
    A ticket carries the user's ``token_version`` (``ver``). The stream closes when the user's
    ``token_version`` is no longer that (password changed or reset, every session signed out, role or
    status changed) or the user is deactivated. Those changes are pushed: when a commit changes a
    user's ``token_version`` or ``is_active``, a :class:`~tradefleet.events.updates.SessionUpdate`
    (kind ``session``, ``{"token_version": n}``, never forwarded to the browser) is published on the
    user's channel after the commit, so a stream sees it before anything published later. Streams also check the database every
    ``EVENTS_SESSION_CHECK_S`` seconds (a change made by a process that does not publish).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session as OrmSession

from tradefleet.config import get_settings

# KEYS[1] the user's slot set; ARGV: lease ms, limit, slot id, mode (1 take, 0 renew).
# Returns 1 when the slot is held (until now + lease), 0 when the limit is reached.
_LUA_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[3]) then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[3])
redis.call('PEXPIRE', KEYS[1], lease)
return 1
"""

_LUA_COUNT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""


class StreamLimitReached(Exception):
    """The user already holds ``limit`` open streams. The message names the setting and is safe to show."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"too many open event streams: at most {limit} per user (STREAM_MAX_PER_USER); "
                         "close one first")


def slots_key(user_id: uuid.UUID | str) -> str:
    """The Redis sorted set of a user's stream slots: ``events:slots:user:<id>``."""
    return f"events:slots:user:{user_id}"


def check_interval_s() -> float:
    """Seconds between a stream's renewals and session checks: the smaller of the heartbeat and
    ``EVENTS_SESSION_CHECK_S``."""
    settings = get_settings()
    return min(settings.EVENTS_HEARTBEAT_S, settings.EVENTS_SESSION_CHECK_S)


def lease_s() -> float:
    """Seconds a slot stays held after its last renewal: three check intervals plus 10 s of slack."""
    return 3 * check_interval_s() + 10.0


@lru_cache(maxsize=4)
def _scripts(url: str) -> tuple[Any, Any]:
    from tradefleet.events.channels import redis_client

    client = redis_client(url)
    return client.register_script(_LUA_SLOT), client.register_script(_LUA_COUNT)


class _LocalSlots:
    """Slots in this process's memory (no Redis): ``{user: {slot: lease end, monotonic s}}``."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._held: dict[str, dict[str, float]] = {}

    def _alive(self, user: str, now: float) -> dict[str, float]:
        held = {s: end for s, end in self._held.get(user, {}).items() if end > now}
        self._held[user] = held
        return held

    def hold(self, user: str, slot: str, limit: int, lease: float) -> bool:
        with self._guard:
            now = time.monotonic()
            held = self._alive(user, now)
            if slot not in held and len(held) >= limit:
                return False
            held[slot] = now + lease
            return True

    def release(self, user: str, slot: str) -> None:
        with self._guard:
            self._held.get(user, {}).pop(slot, None)

    def count(self, user: str) -> int:
        with self._guard:
            return len(self._alive(user, time.monotonic()))


_local = _LocalSlots()


def _hold(user_id: uuid.UUID, slot: str, *, lease: float) -> bool:
    settings = get_settings()
    limit = settings.STREAM_MAX_PER_USER
    if settings.REDIS_URL:
        take, _ = _scripts(settings.REDIS_URL)
        return bool(take(keys=[slots_key(user_id)], args=[int(lease * 1000), limit, slot]))
    return _local.hold(str(user_id), slot, limit, lease)


@dataclass
class StreamSlot:
    """One held slot of ``user_id``; :meth:`renew` while the stream runs, :meth:`release` when it ends."""

    user_id: uuid.UUID
    id: str
    lease_s: float

    def renew(self) -> bool:
        """Extend the lease by :attr:`lease_s`; False when it had expired and the user's slots are all
        taken meanwhile (the stream must then end). Blocking (one Redis call)."""
        return _hold(self.user_id, self.id, lease=self.lease_s)

    def release(self) -> None:
        """Give the slot back (idempotent). Blocking (one Redis call); never raises."""
        settings = get_settings()
        try:
            if settings.REDIS_URL:
                from tradefleet.events.channels import redis_client

                redis_client(settings.REDIS_URL).zrem(slots_key(self.user_id), self.id)
            else:
                _local.release(str(self.user_id), self.id)
        except Exception:  # noqa: BLE001 - the lease expires by itself
            pass


def acquire(user_id: uuid.UUID, *, lease: float | None = None) -> StreamSlot:
    """Take one of ``user_id``'s ``STREAM_MAX_PER_USER`` slots for :func:`lease_s` seconds (or ``lease``).
    Raises :class:`StreamLimitReached` when all are held. Blocking (one Redis call)."""
    slot = StreamSlot(user_id=user_id, id=uuid.uuid4().hex, lease_s=lease if lease is not None else lease_s())
    if not _hold(user_id, slot.id, lease=slot.lease_s):
        raise StreamLimitReached(get_settings().STREAM_MAX_PER_USER)
    return slot


def open_count(user_id: uuid.UUID) -> int:
    """How many slots ``user_id`` holds now (expired leases not counted). Blocking."""
    settings = get_settings()
    if settings.REDIS_URL:
        _, count = _scripts(settings.REDIS_URL)
        return int(count(keys=[slots_key(user_id)]))
    return _local.count(str(user_id))


# --- session ends: publish a ``session`` event after a commit that changed a user's token_version ------

_PENDING = "tradefleet.session_changes"


def _collect(session: OrmSession, _flush_context: Any) -> None:
    from tradefleet.models import User

    for obj in session.dirty:
        if not isinstance(obj, User):
            continue
        state = inspect(obj)
        if state.attrs.token_version.history.has_changes() or state.attrs.is_active.history.has_changes():
            session.info.setdefault(_PENDING, {})[obj.id] = obj.token_version


def _publish(session: OrmSession) -> None:
    changed = session.info.pop(_PENDING, None)
    if not changed:
        return
    from tradefleet.events.outbox import publish_all
    from tradefleet.events.updates import SessionUpdate

    publish_all({user_id: [SessionUpdate(token_version=version)] for user_id, version in changed.items()})


def _forget(session: OrmSession) -> None:
    session.info.pop(_PENDING, None)


def install_session_watch() -> None:
    """Publish a ``session`` event on a user's channel after every commit that changed their
    ``token_version`` or ``is_active`` (idempotent; every ORM session of this process)."""
    if not event.contains(OrmSession, "after_flush", _collect):
        event.listen(OrmSession, "after_flush", _collect)
        event.listen(OrmSession, "after_commit", _publish)
        event.listen(OrmSession, "after_rollback", _forget)


__all__ = ["StreamLimitReached", "StreamSlot", "acquire", "check_interval_s",
           "install_session_watch", "lease_s", "open_count", "slots_key"]
