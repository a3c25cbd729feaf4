"""Fault injection for tests: make the simulator fail chosen requests the way a real exchange does.

``POST /sim/faults`` adds one rule (JSON)::

    {"kind": "error" | "timeout" | "rate_limit" | "down" | "latency",
     "count": 1,                      # requests to hit (default 1; null = until DELETE /sim/faults)
     "when": "before" | "after",      # fail before the request is handled, or handle it and lose the reply
     "paths": ["POST /api/v3/order"], # "METHOD /path" or "/path" (any method); default: order changes
     "api_key": "...",                # only requests signed with this account's key (default: any)
     "delay_s": 3.0}                  # for "timeout" and "latency": how long to hang first

* ``error``: HTTP 503 with Binance's text reply (ccxt: ``ExchangeNotAvailable``, a ``NetworkError``).
* ``timeout``: hang ``delay_s`` seconds, then 504 (a client with a shorter timeout raises
  ``RequestTimeout``).
* ``rate_limit``: HTTP 429 ``{"code": -1003, ...}`` with ``Retry-After`` (ccxt: ``DDoSProtection`` /
  ``RateLimitExceeded``); always *before*.
* ``down``: like ``error`` but the default ``paths`` are every Binance path (``/api`` and ``/sapi``).
* ``latency``: hang ``delay_s`` seconds, then handle the request normally (a slow account); always
  *before*.

``when="after"`` is the crash case an order manager must survive: the order **is** placed (or
cancelled) and the client sees only the failure. ``/sim/*`` admin paths are never faulted.
``GET /sim/faults`` lists the pending rules with what is left of their count and how many requests
each has hit; ``DELETE /sim/faults`` removes them all. Rules are checked in the order they were added;
a request consumes at most one.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

KINDS = ("error", "timeout", "rate_limit", "down", "latency")
ORDER_CHANGE_PATHS = ("POST /api/v3/order", "DELETE /api/v3/order", "DELETE /api/v3/openOrders")


class FaultSpecError(ValueError):
    """A fault rule is malformed; the message names the field."""


@dataclass
class FaultRule:
    kind: str
    remaining: int | None
    when: str
    paths: tuple[str, ...]
    delay_s: float
    api_key: str | None = None
    hits: int = 0

    def matches(self, method: str, path: str, api_key: str | None = None) -> bool:
        if self.api_key is not None and api_key != self.api_key:
            return False
        if self.kind == "down" and not self.paths:
            return path.startswith("/api/") or path.startswith("/sapi/")
        return any(p == path or p == f"{method} {path}" for p in self.paths)

    def view(self) -> dict[str, Any]:
        return {"kind": self.kind, "remaining": self.remaining, "when": self.when, "paths": list(self.paths),
                "api_key": self.api_key, "delay_s": self.delay_s, "hits": self.hits}


def parse_rule(raw: Any) -> FaultRule:
    """Validate a ``POST /sim/faults`` body; raises :class:`FaultSpecError` naming the field."""
    if not isinstance(raw, dict):
        raise FaultSpecError("body: expected a JSON object")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise FaultSpecError(f"kind: one of {', '.join(KINDS)}")
    count = raw.get("count", 1)
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise FaultSpecError("count: a positive integer or null")
    when = raw.get("when", "before")
    if when not in ("before", "after") or (kind in ("rate_limit", "latency") and when == "after"):
        raise FaultSpecError("when: 'before' or 'after' ('before' only for rate_limit and latency)")
    api_key = raw.get("api_key")
    if api_key is not None and (not isinstance(api_key, str) or not api_key):
        raise FaultSpecError("api_key: a non-empty string or null")
    default_paths: tuple[str, ...] = () if kind == "down" else ORDER_CHANGE_PATHS
    paths = raw.get("paths", list(default_paths))
    if not isinstance(paths, list) or not all(isinstance(p, str) and "/" in p for p in paths):
        raise FaultSpecError("paths: a list of 'METHOD /path' or '/path' strings")
    delay = raw.get("delay_s", 3.0)
    if not isinstance(delay, (int, float)) or isinstance(delay, bool) or not 0 <= delay <= 120:
        raise FaultSpecError("delay_s: seconds between 0 and 120")
    return FaultRule(kind=kind, remaining=count, when=when, paths=tuple(paths), delay_s=float(delay),
                     api_key=api_key)


class FaultInjector:
    """The pending fault rules (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> int:
        with self._lock:
            n, self._rules = len(self._rules), []
            return n

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.view() for r in self._rules]

    def take(self, method: str, path: str, api_key: str | None = None) -> FaultRule | None:
        """The first rule matching the request, with one use consumed (spent rules are dropped)."""
        if path.startswith("/sim/"):
            return None
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path, api_key):
                    rule.hits += 1
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining <= 0:
                            self._rules.remove(rule)
                    return rule
        return None


async def _send_plain(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    hdrs = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": hdrs + (headers or [])})
    await send({"type": "http.response.body", "body": body})


async def answer_fault(rule: FaultRule, send: Send) -> None:
    """Send the reply of ``rule`` (after the delay of a timeout)."""
    if rule.kind == "rate_limit":
        body = json.dumps({"code": -1003, "msg": "Too many requests; current limit is 6000 request weight per "
                           "1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API."})
        await send({"type": "http.response.start", "status": 429, "headers": [
            (b"content-type", b"application/json"), (b"retry-after", b"1"),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body.encode()})
    elif rule.kind == "timeout":
        await asyncio.sleep(rule.delay_s)
        await _send_plain(send, 504, b"Gateway Timeout")
    else:
        await _send_plain(send, 503, b"Service Unavailable")


class FaultMiddleware:
    """ASGI middleware applying :class:`FaultInjector` rules (see the module docstring)."""

    def __init__(self, app: ASGIApp, faults: FaultInjector) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api_key = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"x-mbx-apikey"), None)
        rule = self.faults.take(scope["method"], scope["path"], api_key)
        if rule is None:
            await self.app(scope, receive, send)
            return
        if rule.kind == "latency":
            await asyncio.sleep(rule.delay_s)
            await self.app(scope, receive, send)
            return
        if rule.when == "after":

            async def discard(message: Message) -> None:
                return None

            await self.app(scope, receive, discard)
        await answer_fault(rule, send)
