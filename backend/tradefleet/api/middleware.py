"""HTTP hardening: request ids, security headers, a request body size limit, a last-resort 500, CORS.

:func:`install_middleware` adds, outermost first:

1. :class:`SecurityMiddleware` (pure ASGI, so it sees every response, errors included):
   * who is asking (client IP, user agent, request id) in
     :data:`tradefleet.services.audit.request_meta` for the audit log;
   * a request id per request (``X-Request-ID``: the client's if it is 8..64 of ``[A-Za-z0-9._-]``,
     else a new one) in ``request.state.request_id`` and on the response;
   * security headers on every response: ``X-Content-Type-Options: nosniff``, ``Referrer-Policy:
     no-referrer``, ``X-Frame-Options: DENY``, a ``Content-Security-Policy`` (``default-src 'none'`` for
     API replies, which are JSON; :data:`~tradefleet.api.docs.DOCS_CSP` for the API docs page;
     ``frame-ancestors 'none'`` and friends for the frontend, which loads its own scripts), and ``Strict-Transport-Security`` with ``ENVIRONMENT=production``;
   * ``MAX_REQUEST_BYTES``: a body announced larger by ``Content-Length`` is refused at once; a body that
     grows past it while streaming (chunked, or a lying ``Content-Length``) is cut off as soon as the limit
     is passed. Both answer ``413 {"detail": "request body too large (limit N bytes)"}``;
   * an exception nothing else handled becomes :func:`~tradefleet.api.errors.internal_error_response`
     (logged with its trace; the client gets a generic message with the request id). It is not raised
     further once that reply is out, so the server keeps the connection open for the next request.
2. :class:`~tradefleet.api.validation.InputGuardMiddleware`: NUL, lone surrogates and control characters
   in the path, the query string and JSON / form bodies are a 422 naming the field, before any route.
3. Starlette's ``CORSMiddleware`` allowing only ``ALLOWED_ORIGINS`` (none by default), no cookies
   (the API authenticates with bearer tokens).
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradefleet.api.docs import DOCS_CSP, DOCS_PATH
from tradefleet.api.errors import error_body, internal_error_response
from tradefleet.api.route_index import RouteIndex
from tradefleet.api.validation import InputGuardMiddleware
from tradefleet.config import get_settings
from tradefleet.security.ratelimit import client_ip_of
from tradefleet.services.audit import RequestMeta, request_meta

logger = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# The frontend runs scripts and styles; it still may not be framed or post elsewhere. (The API docs page
# has its own policy, api/docs.DOCS_CSP.)
PAGE_CSP = "frame-ancestors 'none'; base-uri 'self'; object-src 'none'; form-action 'self'"
HSTS = "max-age=63072000; includeSubDomains"


class BodyTooLarge(StarletteHTTPException):
    """413, raised from ``receive`` when the body passes ``MAX_REQUEST_BYTES``."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body too large (limit {limit} bytes)")


class SecurityMiddleware:
    """See the module docstring."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, production: bool, api_prefix: str,
                 docs_paths: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.production = production
        self.api_prefix = api_prefix
        self.docs_paths = docs_paths

    def _headers(self, path: str) -> list[tuple[bytes, bytes]]:
        if path in self.docs_paths:
            csp = DOCS_CSP
        elif path.startswith(self.api_prefix):
            csp = API_CSP
        else:
            csp = PAGE_CSP
        headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"content-security-policy", csp.encode()),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        if self.production:
            headers.append((b"strict-transport-security", HSTS.encode()))
        return headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        sent_id = _header(scope, b"x-request-id")
        request_id = sent_id if sent_id and _REQUEST_ID.match(sent_id) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        client = scope.get("client")
        meta = RequestMeta(ip=client_ip_of(client[0] if client else "unknown", _header(scope, b"x-forwarded-for") or ""),
                           user_agent=_header(scope, b"user-agent"), request_id=request_id)
        meta_token = request_meta.set(meta)
        try:
            await self._serve(scope, receive, send, request_id)
        finally:
            request_meta.reset(meta_token)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        extra = self._headers(scope.get("path", "")) + [(b"x-request-id", request_id.encode())]
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                names = {name.lower() for name, _ in message.get("headers", [])}
                message = dict(message)
                message["headers"] = list(message.get("headers", [])) + [
                    (name, value) for name, value in extra if name not in names]
            await send(message)

        limit = self.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            if declared.isdigit():
                await _send_json(send_with_headers, 413, error_body(f"request body too large (limit {limit} bytes)"))
            else:
                await _send_json(send_with_headers, 400, error_body("invalid Content-Length header"))
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except BodyTooLarge as exc:
            # Read by code outside the route's error handlers (e.g. a middleware): answer here.
            if not started:
                await _send_json(send_with_headers, 413, error_body(exc.detail))
        except Exception as exc:
            logger.error("unhandled error on %s %s (request id %s)", scope.get("method"), scope.get("path"),
                         request_id, exc_info=exc)
            exc.tradefleet_logged = True  # type: ignore[attr-defined]  (the app's 500 handler logs no twice)
            if not started:
                response = internal_error_response(request_id)
                await response(scope, receive, send_with_headers)
                # Handled: raising it further would make the server drop a keep-alive connection.
                return
            # A reply was already under way: the server can only cut the connection.
            raise


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    import json

    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": payload})


def install_middleware(app: FastAPI, *, api_prefix: str, route_index: RouteIndex | None = None) -> None:
    """Add CORS (``ALLOWED_ORIGINS``), the input guard and :class:`SecurityMiddleware` to ``app`` (see the
    module docstring); ``route_index`` names path parameters in the guard's errors."""
    settings = get_settings()
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.ALLOWED_ORIGINS),
        allow_credentials=False,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
        expose_headers=["Retry-After", "X-Request-ID"],
        max_age=600,
    )
    app.add_middleware(InputGuardMiddleware, path_param_of=route_index.param_at if route_index else None,
                       allowed_methods=route_index.allowed if route_index else None)
    # Added last: outermost, so its headers and its 413 / 500 cover everything inside, CORS included.
    app.add_middleware(
        SecurityMiddleware,
        max_body_bytes=settings.MAX_REQUEST_BYTES,
        production=settings.ENVIRONMENT == "production",
        api_prefix=api_prefix,
        docs_paths=(DOCS_PATH,),
    )
