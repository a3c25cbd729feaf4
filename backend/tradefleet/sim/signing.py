"""Binance's checks of a signed (``SIGNED``) request to the simulator, and the account it opens.

Signed requests (``SIGNED`` endpoints of https://developers.binance.com/docs/binance-spot-api-docs/rest-api/)
are checked in Binance's order:

1. ``X-MBX-APIKEY`` header: missing or malformed -> HTTP 401 -2014 "API-key format invalid.";
   unknown key -> HTTP 401 -2015 "Invalid API-key, IP, or permissions for action." (ccxt
   ``AuthenticationError``; note ccxt maps -2015 to ``DDoSProtection`` once an exchange object has
   authenticated successfully).
2. ``timestamp`` (-1102 when missing), ``recvWindow`` (default 5000, at most 60000: -1131). The window
   is checked against the **wall clock** (``time.time()``), as Binance checks its server time, not the
   sim clock: ``timestamp < now + 1000`` and ``now - timestamp <= recvWindow``, else -1021
   (ccxt ``InvalidNonce``).
3. ``signature`` = hex HMAC-SHA256 of ``totalParams`` with the account's secret, where ``totalParams``
   is the raw query string followed by the raw request body, without the ``signature`` parameter
   (-1102 when missing; -1022 "Signature for this request is not valid." -> ccxt ``AuthenticationError``).
4. The key's permission (read for queries, trade for order changes): else HTTP 401 -2015 as above.

Parameters may come in the query string or the form body (``application/x-www-form-urlencoded``).
Every private request first matches the account's resting orders against the candles closed since
(:func:`tradefleet.sim.matching.match_open_orders`). Order semantics: :mod:`tradefleet.sim.matching`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from starlette.requests import Request

from tradefleet.sim.accounts import SimAccount
from tradefleet.sim.errors import BinanceAPIError, illegal_chars, mandatory_param
from tradefleet.sim.matching import match_open_orders
from tradefleet.sim.public import sim_state

if TYPE_CHECKING:
    from tradefleet.sim.state import SimState

DEFAULT_RECV_WINDOW = 5000
MAX_RECV_WINDOW = 60000
KEY_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,256}$")
"""The ``X-MBX-APIKEY`` values accepted (else -2014)."""
_DECIMAL_RE = re.compile(r"^[0-9]{1,20}(\.[0-9]{1,20})?$")


def _unauthorized(code: int, msg: str) -> BinanceAPIError:
    return BinanceAPIError(code, msg, status=401)


def _no_permission() -> BinanceAPIError:
    return _unauthorized(-2015, "Invalid API-key, IP, or permissions for action.")


def _strip_signature(raw: str) -> tuple[str, list[str]]:
    """``raw`` without its ``signature=`` items, and the signatures found."""
    if not raw:
        return "", []
    keep, sigs = [], []
    for item in raw.split("&"):
        if item.startswith("signature="):
            sigs.append(item[len("signature="):])
        else:
            keep.append(item)
    return "&".join(keep), sigs


class Signed:
    """A verified signed request: its account and merged parameters (query, then body)."""

    def __init__(self, account: SimAccount, params: dict[str, str]) -> None:
        self.account = account
        self.params = params

    def get(self, name: str) -> str | None:
        value = self.params.get(name)
        return None if value is None or value == "" else value

    def required(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise mandatory_param(name)
        return value

    def integer(self, name: str) -> int | None:
        raw = self.get(name)
        if raw is None:
            return None
        if not raw.isdigit() or len(raw) > 20:
            raise illegal_chars(name, "^[0-9]{1,20}$")
        return int(raw)

    def decimal(self, name: str) -> Decimal | None:
        raw = self.get(name)
        if raw is None:
            return None
        if not _DECIMAL_RE.match(raw):
            raise illegal_chars(name, "^([0-9]{1,20})(\\.[0-9]{1,20})?$")
        try:
            return Decimal(raw)
        except InvalidOperation as exc:  # pragma: no cover - the pattern admits only decimals
            raise illegal_chars(name, "^([0-9]{1,20})(\\.[0-9]{1,20})?$") from exc


async def authenticate(request: Request, *, permission: str) -> Signed:
    """Check key, permission, timestamp window and signature (module docstring), then book the
    account's resting orders due at the sim time (:func:`book_due_fills`)."""
    state = sim_state(request)
    api_key = request.headers.get("x-mbx-apikey", "")
    if not KEY_RE.match(api_key):
        raise _unauthorized(-2014, "API-key format invalid.")
    account = state.accounts.get(api_key)
    if account is None:
        raise _no_permission()
    query = request.scope.get("query_string", b"").decode("latin-1")
    body = (await request.body()).decode("latin-1")
    query_wo, sigs_q = _strip_signature(query)
    body_wo, sigs_b = _strip_signature(body)
    params = dict(parse_qsl(query_wo, keep_blank_values=True))
    params.update(parse_qsl(body_wo, keep_blank_values=True))
    signed = Signed(account, params)
    timestamp = signed.integer("timestamp")
    if timestamp is None:
        raise mandatory_param("timestamp")
    recv_window = signed.integer("recvWindow")
    recv_window = DEFAULT_RECV_WINDOW if recv_window is None else recv_window
    if recv_window > MAX_RECV_WINDOW:
        raise BinanceAPIError(-1131, "recvWindow must be less than 60000")
    now = int(time.time() * 1000)
    if timestamp >= now + 1000:
        raise BinanceAPIError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if now - timestamp > recv_window:
        raise BinanceAPIError(-1021, "Timestamp for this request is outside of the recvWindow.")
    sigs = sigs_q + sigs_b
    if not sigs or not sigs[0]:
        raise mandatory_param("signature")
    expected = hmac.new(account.secret.encode(), (query_wo + body_wo).encode("latin-1"), hashlib.sha256).hexdigest()
    if len(sigs) != 1 or not hmac.compare_digest(expected, sigs[0].lower()):
        raise BinanceAPIError(-1022, "Signature for this request is not valid.")
    if not account.permissions.get(permission, False):
        raise _no_permission()
    with account.lock:
        booked = book_due_fills(state, account)
    if booked:
        state.accounts.save()
    return signed


def book_due_fills(state: SimState, account: SimAccount) -> int:
    """Book the fills of ``account``'s resting orders due at the sim time (caller holds the lock;
    saves are the caller's, after releasing it)."""
    return match_open_orders(account, state.rules, state.data, now_ms=state.clock.now_ms(),
                             next_trade_id=state.accounts.next_trade_id)
