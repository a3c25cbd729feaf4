"""Which methods each API path allows, and the app mounted at ``/`` behind the API.

:class:`RouteIndex` is built from the application's routes once they are all included. It answers
:meth:`~RouteIndex.allowed` (the methods of every route matching a path) and
:meth:`~RouteIndex.param_at` (the name of the path parameter a segment belongs to, for the input
guard's field names).

:class:`FallbackApp` is mounted at ``/`` after the API routes, so it sees only what no route matched:

* a path under ``/api`` (the API prefix, other versions, ``/api/`` itself) is never a file or a page:
  ``405`` with the API's own ``Allow`` (``GET, POST``..., the union over the routes of that path) when a
  route matches the path with another method, else ``404``; both in the error format of
  :mod:`tradefleet.api.errors`;
* anything else goes to the frontend's static files (or 404 when there is no ``frontend/``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tradefleet.api.errors import error_body


@dataclass(frozen=True)
class _Entry:
    regex: re.Pattern[str]
    methods: frozenset[str]
    segments: tuple[tuple[str | None, str], ...]
    """Per path segment: the name of the parameter it holds (None for a literal segment), and the text."""


_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}$")


class RouteIndex:
    """The API's routes by path: ``allowed(path) -> set of methods`` and ``param_at(path, i) -> name``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix.rstrip("/")
        self._entries: list[_Entry] = []

    def build(self, routes: list[BaseRoute]) -> "RouteIndex":
        """Index every route with a path and methods under the prefix: Starlette's ``Route``, FastAPI's
        ``APIRoute``, and the routes of included routers (which FastAPI keeps as one entry each)."""
        entries = []
        for route in _flatten(routes):
            path = getattr(route, "path", None)
            regex = getattr(route, "path_regex", None)
            if not isinstance(path, str) or regex is None or not path.startswith(self.prefix + "/"):
                continue
            methods = set(getattr(route, "methods", None) or ())
            if not methods:
                continue
            segments = tuple((m.group(1) if (m := _PARAM.match(part)) else None, part) for part in path.split("/"))
            entries.append(_Entry(regex, frozenset(methods), segments))
        self._entries = entries
        return self

    def is_api(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")

    def allowed(self, path: str) -> set[str]:
        """The methods of every route whose path matches ``path`` (empty: no route has this path)."""
        matching = [entry for entry in self._entries if entry.regex.match(path)]
        if not matching:
            return set()
        # The most literal routes win: "/runs/kill-all" is that route's, not a value of "/runs/{run_id}".
        literal = max(sum(name is None for name, _ in entry.segments) for entry in matching)
        methods: set[str] = set()
        for entry in matching:
            if sum(name is None for name, _ in entry.segments) == literal:
                methods |= entry.methods
        return methods

    def param_at(self, path: str, index: int) -> str | None:
        """The path parameter the ``index``-th ``/``-separated segment of ``path`` fills, if a route
        with that many segments has a parameter there (the path itself may not match: its value is bad)."""
        parts = path.split("/")
        for entry in self._entries:
            if len(entry.segments) != len(parts) or index >= len(parts) or entry.segments[index][0] is None:
                continue
            if all(name is not None or text == part for (name, text), part in zip(entry.segments, parts)):
                return entry.segments[index][0]
        return None


def _flatten(routes: list[Any]) -> list[Any]:
    out: list[Any] = []
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if callable(contexts):
            out.extend(contexts())
        elif isinstance(route, Route):
            out.append(route)
    return out


class FallbackApp:
    """See the module docstring: API paths get 404/405 from ``index``; other paths go to ``static``."""

    def __init__(self, index: RouteIndex, static: ASGIApp | None) -> None:
        self.index = index
        self.static = static

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Under a mount, ``path`` is the full path and ``root_path`` the mount's (here "").
        path = scope.get("path", "")
        api_space = path == "/api" or path.startswith("/api/")
        if scope["type"] == "http" and (api_space or self.static is None):
            allowed = self.index.allowed(path) if self.index.is_api(path) else set()
            if allowed:
                await _json(send, 405, error_body("Method Not Allowed"), [(b"allow", allow_header(allowed).encode())])
            else:
                await _json(send, 404, error_body("Not Found"), [])
            return
        assert self.static is not None
        await self.static(scope, receive, send)


def allow_header(methods: set[str]) -> str:
    """``methods`` as an ``Allow`` value, in the usual order: ``GET, POST``."""
    order = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return ", ".join(sorted(methods, key=lambda m: (order.index(m) if m in order else len(order), m)))


async def _json(send: Send, status: int, body: dict, headers: list[tuple[bytes, bytes]]) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()), *headers]})
    await send({"type": "http.response.body", "body": payload})


__all__ = ["FallbackApp", "RouteIndex", "allow_header"]
