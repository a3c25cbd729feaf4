"""Where a user's live updates travel with Redis: the pub/sub channel, the stream kept for resuming, and
the client both sides use (:mod:`tradefleet.events.outbox` writes, :mod:`tradefleet.events.stream` reads,
:mod:`tradefleet.stream_slots` keeps its slots there too)."""

from __future__ import annotations

import uuid
from functools import lru_cache
from typing import Any


def channel(user_id: uuid.UUID | str) -> str:
    """The pub/sub channel of a user: ``user:<id>``."""
    return f"user:{user_id}"


def stream_key(user_id: uuid.UUID | str) -> str:
    """The Redis stream that keeps a user's recent events for resuming: ``events:user:<id>``."""
    return f"events:user:{user_id}"


@lru_cache(maxsize=4)
def redis_client(url: str) -> Any:
    """A synchronous ``redis.Redis`` for ``url`` (5 s socket timeout, 3 s to connect), one per URL and
    process."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3)


__all__ = ["channel", "redis_client", "stream_key"]
