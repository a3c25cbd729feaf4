"""Account lockout after repeated failed sign-ins, with growing delays, in two layers.

Counters live in the rate-limit storage (:func:`tradefleet.security.ratelimit.get_storage`: Redis when
``REDIS_URL`` is set, process memory otherwise), keyed by a hash of the e-mail, whether or not an account
has that e-mail: a lock never tells an attacker which addresses are registered.

Two locks, both checked by :func:`check` before the password is even looked at (429 with ``Retry-After``,
:class:`~tradefleet.security.ratelimit.RateLimited`):

* **per (account, client IP)**, fast (``LOCKOUT_THRESHOLD``, ``LOCKOUT_BASE_S``, ``LOCKOUT_MAX_S``): the
  ``LOCKOUT_THRESHOLD``-th consecutive failure from one client IP locks that account *for that IP* for
  ``LOCKOUT_BASE_S`` seconds; every further failure from it (possible once the lock ends) locks it again
  for twice as long, at most ``LOCKOUT_MAX_S``. Someone guessing from their own address never locks the
  owner out of the owner's address. The client IP is
  :func:`tradefleet.security.ratelimit.client_ip` (``X-Forwarded-For`` only from ``TRUSTED_PROXIES``).
* **per account**, slower (``LOCKOUT_ACCOUNT_THRESHOLD``, ``LOCKOUT_ACCOUNT_BASE_S``,
  ``LOCKOUT_ACCOUNT_MAX_S``): failures from *any* IP add up; at the threshold the account's sign-in is
  locked from everywhere, doubling the same way. This stops guessing spread over many addresses.

Neither lock ever applies to the password-reset routes (request and confirm): the owner can always
get back in, and a completed reset (:func:`clear_account`) lifts both locks for every IP. A successful
sign-in (:func:`succeeded`) forgets that IP's failures; the account-wide count only decays (it is not
the owner's sign-in that should let a distributed guesser start again). Admins are treated alike.

Each time a series of failures first locks the account (per IP or account-wide), the owner (if the
account exists) is told by e-mail; per-IP notices are sent at most once per ``LOCKOUT_NOTICE_INTERVAL_S``
per account, so guessing from many addresses cannot flood the owner's mailbox.

Failures are forgotten ``LOCKOUT_MAX_S * 4`` (per IP) or ``LOCKOUT_ACCOUNT_MAX_S * 4`` (per account)
seconds after the first of a series.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import UTC, datetime

from sqlmodel import Session, select

from tradefleet.config import get_settings
from tradefleet.security.ratelimit import RateLimited, account_key, get_storage

logger = logging.getLogger(__name__)

PREFIX = "tradefleet/lockout"
# A completed reset moves the account to a new generation: the per-IP counters of older generations are
# ignored from then on (the storage cannot list keys, so they are left to expire).
GENERATION_EXPIRY_S = 30 * 24 * 3600


def _ip_key(ip: str) -> str:
    return hashlib.sha256((ip or "unknown").encode()).hexdigest()[:24]


def _generation(account: str) -> int:
    return get_storage().get(f"{PREFIX}/generation/{account}")


def _pair_keys(email: str, ip: str) -> tuple[str, str]:
    account = account_key(email)
    base = f"{PREFIX}/ip/{account}/{_generation(account)}/{_ip_key(ip)}"
    return f"{base}/failures", f"{base}/locked"


def _account_keys(email: str) -> tuple[str, str]:
    account = account_key(email)
    return f"{PREFIX}/account/{account}/failures", f"{PREFIX}/account/{account}/locked"


def _remaining(lock_key: str) -> int:
    storage = get_storage()
    if storage.get(lock_key) <= 0:
        return 0
    return max(1, int(storage.get_expiry(lock_key) - time.time() + 0.999))


def locked_for(email: str, ip: str) -> int:
    """Seconds until sign-in to ``email`` from ``ip`` is possible again (0: not locked), the longer of
    the (account, IP) lock and the account-wide lock."""
    return max(_remaining(_pair_keys(email, ip)[1]), account_locked_for(email))


def account_locked_for(email: str) -> int:
    """Seconds until ``email``'s account-wide lock ends (0: not locked)."""
    return _remaining(_account_keys(email)[1])


def check(email: str, ip: str) -> None:
    """Raise :class:`RateLimited` (429, ``Retry-After``) while sign-in to ``email`` from ``ip`` is locked.

    Never called by the password-reset routes."""
    pair = _remaining(_pair_keys(email, ip)[1])
    everywhere = account_locked_for(email)
    if everywhere and everywhere >= pair:
        raise RateLimited(everywhere, f"too many failed logins for this account: locked, retry in {everywhere} s"
                                      " (or reset the password)")
    if pair:
        raise RateLimited(pair, f"too many failed logins: account locked, retry in {pair} s")


def _duration(failures: int, threshold: int, base_s: int, max_s: int) -> int:
    over = failures - threshold
    if over < 0:
        return 0
    return int(min(base_s * 2 ** min(over, 30), max_s))


def lock_duration(failures: int) -> int:
    """Seconds of (account, IP) lock after ``failures`` consecutive failures from one IP (0 below the
    threshold)."""
    s = get_settings()
    return _duration(failures, s.LOCKOUT_THRESHOLD, s.LOCKOUT_BASE_S, s.LOCKOUT_MAX_S)


def account_lock_duration(failures: int) -> int:
    """Seconds of account-wide lock after ``failures`` failures from any IPs (0 below the threshold)."""
    s = get_settings()
    return _duration(failures, s.LOCKOUT_ACCOUNT_THRESHOLD, s.LOCKOUT_ACCOUNT_BASE_S, s.LOCKOUT_ACCOUNT_MAX_S)


def _lock(lock_key: str, duration: int) -> None:
    storage = get_storage()
    storage.clear(lock_key)
    storage.incr(lock_key, expiry=duration)


def failed(email: str, ip: str, *, session: Session | None = None) -> int:
    """Record a failed sign-in for ``email`` from ``ip``; returns the lock it started in seconds (0: none;
    the longer one when both layers lock at once).

    When a series first locks and ``session`` finds a user with that e-mail, the owner is notified."""
    settings = get_settings()
    storage = get_storage()
    pair_failures_key, pair_lock_key = _pair_keys(email, ip)
    account_failures_key, account_lock_key = _account_keys(email)
    pair_failures = storage.incr(pair_failures_key, expiry=settings.LOCKOUT_MAX_S * 4)
    account_failures = storage.incr(account_failures_key, expiry=settings.LOCKOUT_ACCOUNT_MAX_S * 4)
    pair_s = lock_duration(pair_failures)
    account_s = account_lock_duration(account_failures)
    if pair_s:
        _lock(pair_lock_key, pair_s)
        logger.warning("account %s locked for one client IP for %d s after %d failed logins from it",
                       account_key(email), pair_s, pair_failures)
    if account_s:
        _lock(account_lock_key, account_s)
        logger.warning("account %s locked from every IP for %d s after %d failed logins",
                       account_key(email), account_s, account_failures)
    if session is not None:
        if account_failures == settings.LOCKOUT_ACCOUNT_THRESHOLD:
            _notify_owner(session, email, failures=account_failures, duration_s=account_s, everywhere=True)
        elif pair_failures == settings.LOCKOUT_THRESHOLD and _notice_due(email):
            _notify_owner(session, email, failures=pair_failures, duration_s=pair_s, everywhere=False)
    return max(pair_s, account_s)


def _notice_due(email: str) -> bool:
    """True at most once per ``LOCKOUT_NOTICE_INTERVAL_S`` per account (per-IP lock notices)."""
    key = f"{PREFIX}/notice/{account_key(email)}"
    return get_storage().incr(key, expiry=get_settings().LOCKOUT_NOTICE_INTERVAL_S) == 1


def succeeded(email: str, ip: str) -> None:
    """A successful sign-in from ``ip``: forget that IP's failures for ``email`` (the account-wide count
    is left to decay)."""
    failures_key, lock_key = _pair_keys(email, ip)
    storage = get_storage()
    storage.clear(failures_key)
    storage.clear(lock_key)


def clear_account(email: str) -> None:
    """Lift every lock of ``email``: the account-wide one and the per-IP ones of every IP (after a
    completed password reset, or an operator setting the password)."""
    storage = get_storage()
    for key in _account_keys(email):
        storage.clear(key)
    storage.incr(f"{PREFIX}/generation/{account_key(email)}", expiry=GENERATION_EXPIRY_S)


def _notify_owner(session: Session, email: str, *, failures: int, duration_s: int, everywhere: bool) -> None:
    from sqlalchemy import func

    from tradefleet.models import User

    user = session.exec(select(User).where(func.lower(User.email) == email.strip().lower())).first()
    if user is None:
        return
    until = datetime.fromtimestamp(time.time() + duration_s, UTC)
    from tradefleet.emails import send_account_locked

    send_account_locked(user=user, failures=failures, locked_until=until, everywhere=everywhere)
