"""Retries of exchange requests: one loop for every request that is safe to repeat.

ccxt's ``NetworkError`` family (``RequestTimeout``, ``ExchangeNotAvailable``, ``DDoSProtection``,
``RateLimitExceeded``) is transient: the same request may succeed a moment later. Anything else is
raised at once. The wait grows exponentially, from ``delay_s`` doubled after each failure up to
``max_delay_s``; a caller may lengthen one pause (a rate limit wants more than a dropped connection).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from tradefleet.market.exchange import TRANSIENT_ERRORS

T = TypeVar("T")

log = logging.getLogger(__name__)

def with_retries(call: Callable[[], T], *, what: str, attempts: int, delay_s: float, max_delay_s: float,
                 sleep: Callable[[float], None] = time.sleep,
                 pause: Callable[[BaseException, float], float] | None = None,
                 on_retry: Callable[[BaseException], None] | None = None) -> T:
    """``call()``, made at most ``attempts`` times (at least once) while it raises one of
    :data:`~tradefleet.market.exchange.TRANSIENT_ERRORS`; the last error is raised, other errors at once.

    Before retry *k* (1-based) it waits ``pause(exc, delay)`` seconds (default ``delay``), where
    ``delay`` starts at ``delay_s`` and doubles after each wait up to ``max_delay_s``; ``on_retry(exc)``
    is called first (a counter, say). Each retry is logged at WARNING with ``what`` and the error."""
    attempts = max(1, attempts)
    delay = delay_s
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except TRANSIENT_ERRORS as exc:
            if attempt == attempts:
                raise
            if on_retry is not None:
                on_retry(exc)
            wait = pause(exc, delay) if pause is not None else delay
            log.warning("%s failed (%s: %s); retry %d of %d in %.2f s", what, type(exc).__name__, exc,
                        attempt, attempts - 1, wait)
            sleep(wait)
            delay = min(delay * 2, max_delay_s)
    raise AssertionError("unreachable")


__all__ = ["with_retries"]
