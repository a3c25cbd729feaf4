"""Publishing live updates: after the commit, to the owner's channel, never raising.

Publishers (the engine's tick, order changes, run start and stop, backtests, strategy validation) collect
:class:`~tradefleet.events.updates.LiveUpdate` objects in an :class:`Outbox` while their transaction runs
and call :meth:`Outbox.publish` **after** the commit, so a browser never hears of a row that was rolled
back. Publishing never raises: a lost live update costs a trader a refresh, a failed tick would cost them a
candle.

Transport:

- **With Redis** (``REDIS_URL``): one Lua call per user appends each event to the stream
  ``events:user:<id>`` (capped at ``EVENTS_STREAM_MAXLEN``, expiring after ``EVENTS_RETENTION_S``) and
  ``PUBLISH``-es it, with its stream id, on the channel ``user:<id>``
  (:mod:`tradefleet.events.channels`), as ``<stream id>\\n<kind>\\n<data JSON>``.
- **Without Redis** (the embedded ``make run``: SQLite, the worker and the API in different processes):
  events are rows of ``live_event`` (``user_id``, ``kind``, ``data``). Rows older than
  ``EVENTS_RETENTION_S`` are pruned by publishers, now and then.

:mod:`tradefleet.events.stream` reads both.
"""

from __future__ import annotations

import json
import logging
import random
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from typing import Any

from tradefleet.config import get_settings
from tradefleet.events.channels import channel, redis_client, stream_key
from tradefleet.events.updates import LiveUpdate, json_default, jsonable

log = logging.getLogger(__name__)


@dataclass
class Outbox:
    """Live updates of one transaction, per user, in order; :meth:`publish` them after the commit."""

    items: dict[uuid.UUID, list[LiveUpdate]] = field(default_factory=lambda: defaultdict(list))

    def add(self, user_id: uuid.UUID, update: LiveUpdate) -> None:
        """Queue ``update`` for ``user_id``'s channel. Raises ``TypeError`` for anything but a
        :class:`~tradefleet.events.updates.LiveUpdate`."""
        if not isinstance(update, LiveUpdate):
            raise TypeError(f"not a live update: {type(update).__name__}")
        self.items[user_id].append(update)

    def __len__(self) -> int:
        return sum(len(v) for v in self.items.values())

    def publish(self) -> int:
        """Publish everything queued (then forget it); returns how many events were published. Never
        raises: a failure is logged and the events are dropped."""
        items, self.items = self.items, defaultdict(list)
        return publish_all(items)


def publish(user_id: uuid.UUID, update: LiveUpdate) -> int:
    """Publish one update now (call after the commit of the change it describes); returns 1, or 0 when
    it could not be published."""
    box = Outbox()
    box.add(user_id, update)
    return box.publish()


def publish_all(items: Mapping[uuid.UUID, Sequence[LiveUpdate]]) -> int:
    """Publish updates per user, each user's in order; returns the count. Never raises."""
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
def _redis_script(url: str) -> Any:
    return redis_client(url).register_script(_LUA_PUBLISH)


def _publish_redis(items: Mapping[uuid.UUID, Sequence[LiveUpdate]]) -> int:
    settings = get_settings()
    url = settings.REDIS_URL
    script = _redis_script(url)
    pipe = redis_client(url).pipeline(transaction=False)
    for user_id, updates in items.items():
        args: list[Any] = [settings.EVENTS_STREAM_MAXLEN, settings.EVENTS_RETENTION_S]
        for update in updates:
            args += [update.kind.value, json.dumps(update.to_json(), default=json_default, separators=(",", ":"))]
        script(keys=[stream_key(user_id), channel(user_id)], args=args, client=pipe)
    return int(sum(pipe.execute()))


def _publish_db(items: Mapping[uuid.UUID, Sequence[LiveUpdate]]) -> int:
    from sqlalchemy import delete, insert

    from tradefleet.db import session_scope
    from tradefleet.models import LiveEvent
    from tradefleet.models._types import utcnow

    now = utcnow()
    rows = [dict(user_id=user_id, kind=update.kind.value, data=jsonable(update.to_json()), created_at=now)
            for user_id, updates in items.items() for update in updates]
    with session_scope() as session:
        session.execute(insert(LiveEvent), rows)
        if random.random() < 0.02:  # prune now and then, not on every tick
            cutoff = now - timedelta(seconds=get_settings().EVENTS_RETENTION_S)
            session.execute(delete(LiveEvent).where(LiveEvent.created_at < cutoff))
        session.commit()
    return len(rows)


__all__ = ["Outbox", "publish", "publish_all"]
