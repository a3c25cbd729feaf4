"""Account lockout after repeated failed logins, with growing delays.

Counters live in the rate-limit storage (:func:`tradefleet.security.ratelimit.get_storage`: Redis when
``REDIS_URL`` is set, process memory otherwise), keyed by a hash of the e-mail, whether or not an account
has that e-mail: a lock never tells an attacker which addresses are registered.

Rules (settings ``LOCKOUT_THRESHOLD``, ``LOCKOUT_BASE_S``, ``LOCKOUT_MAX_S``):

* the ``LOCKOUT_THRESHOLD``-th consecutive failure locks the account for ``LOCKOUT_BASE_S`` seconds;
  every further failure (possible once the lock ends) locks it again for twice as long as the last
  time, at most ``LOCKOUT_MAX_S``;
* while locked, :func:`check` raises :class:`~tradefleet.security.ratelimit.RateLimited` (429 with
  ``Retry-After``) before the password is even looked at;
* each time a lock starts, the account's owner (if the account exists) is told by e-mail;
* a successful login (:func:`succeeded`) clears the failures.

Failures are forgotten ``LOCKOUT_MAX_S * 4`` seconds after the first of a series.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from sqlmodel import Session, select

from tradefleet.config import get_settings
from tradefleet.security.ratelimit import RateLimited, account_key, get_storage

logger = logging.getLogger(__name__)


def _keys(email: str) -> tuple[str, str]:
    key = account_key(email)
    return f"tradefleet/lockout/failures/{key}", f"tradefleet/lockout/locked/{key}"


def locked_for(email: str) -> int:
    """Seconds until ``email``'s lock ends (0: not locked)."""
    _failures, lock = _keys(email)
    storage = get_storage()
    if storage.get(lock) <= 0:
        return 0
    return max(1, int(storage.get_expiry(lock) - time.time() + 0.999))


def check(email: str) -> None:
    """Raise :class:`RateLimited` (429, ``Retry-After``) while ``email``'s account is locked."""
    remaining = locked_for(email)
    if remaining:
        raise RateLimited(remaining, f"too many failed logins: account locked, retry in {remaining} s")


def lock_duration(failures: int) -> int:
    """Seconds of lock after ``failures`` consecutive failures (0 below the threshold)."""
    settings = get_settings()
    over = failures - settings.LOCKOUT_THRESHOLD
    if over < 0:
        return 0
    return int(min(settings.LOCKOUT_BASE_S * 2 ** min(over, 30), settings.LOCKOUT_MAX_S))


def failed(email: str, *, session: Session | None = None) -> int:
    """Record a failed login for ``email``; returns the lock it started in seconds (0: none).

    When a lock starts and ``session`` finds a user with that e-mail, the owner is notified."""
    settings = get_settings()
    failures_key, lock_key = _keys(email)
    storage = get_storage()
    failures = storage.incr(failures_key, expiry=settings.LOCKOUT_MAX_S * 4)
    duration = lock_duration(failures)
    if duration:
        storage.clear(lock_key)
        storage.incr(lock_key, expiry=duration)
        logger.warning("account %s locked for %d s after %d failed logins", account_key(email), duration, failures)
        if session is not None:
            _notify_owner(session, email, failures=failures, duration_s=duration)
    return duration


def succeeded(email: str) -> None:
    """A successful login: forget ``email``'s failures."""
    failures_key, lock_key = _keys(email)
    storage = get_storage()
    storage.clear(failures_key)
    storage.clear(lock_key)


def _notify_owner(session: Session, email: str, *, failures: int, duration_s: int) -> None:
    from sqlalchemy import func

    from tradefleet.models import User

    user = session.exec(select(User).where(func.lower(User.email) == email.strip().lower())).first()
    if user is None:
        return
    until = datetime.fromtimestamp(time.time() + duration_s, UTC)
    try:
        from tradefleet.emails import send_account_locked
    except ImportError:
        # Without the e-mail module the log line is the notification.
        logger.warning("account locked notice for user %s (no e-mail sender available): %d failures, until %s",
                       user.id, failures, until.isoformat())
        return
    send_account_locked(user=user, failures=failures, locked_until=until)
