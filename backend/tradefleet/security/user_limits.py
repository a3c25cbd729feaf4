"""Per-user limits on the authenticated routes: requests in flight at once, and requests per minute.

One user must not be able to take the API away from the others: each API process has a small pool of
database connections (``DB_POOL_SIZE`` + ``DB_MAX_OVERFLOW``) and threads, and without these limits a
single trader sending a hundred heavy chart requests at once holds all of them.

In-flight slots (:func:`hold_slot`)
    At most ``USER_MAX_IN_FLIGHT`` requests of one user in progress at once in one API process, of which
    at most ``USER_MAX_IN_FLIGHT_HEAVY`` on a heavy route (:data:`HEAVY_ROUTES`). One more answers
    ``429 {"detail": "too many requests in progress, retry in 1 s"}`` with ``Retry-After: 1``. The slot
    is taken before the request touches the database: the user is the ``sub`` of the bearer token,
    whose signature is checked here (an invalid or missing token takes no slot and is refused by the
    authentication dependency that runs next). Counted in the process's memory, on the event loop
    (no lock needed): the resource protected, the process's pool, is per process too.

Rate limits (:func:`hit_rate`)
    ``RATE_LIMIT_USER`` (``RATE_LIMIT_ADMIN`` for admins) per user on every authenticated route, and
    ``RATE_LIMIT_USER_HEAVY`` in addition on heavy routes, with the ``limits`` library's moving window in
    the storage of :mod:`tradefleet.security.ratelimit` (Redis when ``REDIS_URL`` is set, so every API
    process shares the counters). Over a limit: 429 with ``Retry-After: N`` (seconds). If the storage
    fails (Redis down) the request is let through and the failure logged: an outage of the limiter must
    not become an outage of the API. ``RATE_LIMIT_ENABLED=false`` turns these limits off (slots stay).
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from limits import RateLimitItem, parse_many
from limits.strategies import MovingWindowRateLimiter

from tradefleet.config import get_settings
from tradefleet.security.ratelimit import RateLimited, get_storage
from tradefleet.security.tokens import TokenError, decode_access_claims

logger = logging.getLogger(__name__)

# Route templates (the path the router declares, without /api/v1) that read many rows or build large
# replies: chart candles, equity curves, a backtest's result (trades and equity curve).
HEAVY_ROUTES = frozenset({
    "/runs/{run_id}/candles",
    "/backtests/{backtest_id}/candles",
    "/runs/{run_id}/equity",
    "/backtests/{backtest_id}",
})

SLOT_RETRY_AFTER_S = 1


def is_heavy(route_path: str) -> bool:
    """Whether the route template ``route_path`` (``/api/v1/runs/{run_id}/candles``) is a heavy route."""
    return any(route_path.endswith(template) for template in HEAVY_ROUTES)


def user_from_authorization(authorization: str | None) -> uuid.UUID | None:
    """The user id of a valid bearer token in an ``Authorization`` header value; None when there is no
    token or it is invalid (signature, expiry, type: see ``tokens.decode_access_claims``)."""
    if not authorization or not authorization.lower().startswith("bearer "):
        return None
    try:
        return decode_access_claims(authorization[7:].strip()).user_id
    except TokenError:
        return None


class _Slots:
    """Requests in progress per user in this process (all, and heavy ones)."""

    def __init__(self) -> None:
        self.all: Counter[uuid.UUID] = Counter()
        self.heavy: Counter[uuid.UUID] = Counter()

    def in_flight(self, user_id: uuid.UUID) -> tuple[int, int]:
        return self.all[user_id], self.heavy[user_id]

    def clear(self) -> None:
        self.all.clear()
        self.heavy.clear()


SLOTS = _Slots()


@contextmanager
def hold_slot(user_id: uuid.UUID, *, heavy: bool) -> Iterator[None]:
    """Hold one of ``user_id``'s in-flight slots (and a heavy one if ``heavy``) for the block.

    Raises :class:`~tradefleet.security.ratelimit.RateLimited` (429, ``Retry-After: 1``) when the user
    already has ``USER_MAX_IN_FLIGHT`` requests (``USER_MAX_IN_FLIGHT_HEAVY`` heavy ones) in progress.
    Not thread-safe: call it from the event loop (an ``async`` dependency)."""
    settings = get_settings()
    if SLOTS.all[user_id] >= settings.USER_MAX_IN_FLIGHT or (
            heavy and SLOTS.heavy[user_id] >= settings.USER_MAX_IN_FLIGHT_HEAVY):
        raise RateLimited(SLOT_RETRY_AFTER_S,
                          f"too many requests in progress, retry in {SLOT_RETRY_AFTER_S} s")
    SLOTS.all[user_id] += 1
    if heavy:
        SLOTS.heavy[user_id] += 1
    try:
        yield
    finally:
        for counter, taken in ((SLOTS.all, True), (SLOTS.heavy, heavy)):
            if taken:
                counter[user_id] -= 1
                if counter[user_id] <= 0:
                    del counter[user_id]


def _items(text: str) -> list[RateLimitItem]:
    return parse_many(text)


_last_failure_log = 0.0


def _log_storage_failure(exc: Exception) -> None:
    # At most one line every 10 s: a Redis outage would otherwise log on every request.
    global _last_failure_log
    now = time.monotonic()
    if now - _last_failure_log >= 10:
        _last_failure_log = now
        logger.warning("per-user rate limits not enforced: the limit storage failed (%s: %s)",
                       type(exc).__name__, exc)


def hit_rate(user_id: uuid.UUID, *, admin: bool, heavy: bool) -> None:
    """Count one request of ``user_id`` against its rate limits (see the module docstring).

    Raises :class:`~tradefleet.security.ratelimit.RateLimited` (429 with ``Retry-After``) when over a
    limit. Never raises for a failing storage: the request passes and the failure is logged."""
    settings = get_settings()
    if not settings.RATE_LIMIT_ENABLED:
        return
    scopes = [("admin" if admin else "user", settings.RATE_LIMIT_ADMIN if admin else settings.RATE_LIMIT_USER)]
    if heavy:
        scopes.append(("heavy", settings.RATE_LIMIT_USER_HEAVY))
    key = str(user_id)
    try:
        limiter = MovingWindowRateLimiter(get_storage())
        for scope, text in scopes:
            for item in _items(text):
                if not limiter.hit(item, "tradefleet", "user", scope, key):
                    reset_at, _remaining = limiter.get_window_stats(item, "tradefleet", "user", scope, key)
                    raise RateLimited(math.ceil(reset_at - time.time()))
    except RateLimited:
        raise
    except Exception as exc:  # noqa: BLE001 - any storage failure (connection, timeout, protocol)
        _log_storage_failure(exc)
