"""What the API refuses to run with, whatever ``ENVIRONMENT`` says.

- **Keys that open stored exchange keys** (``VAULT_PRIVATE_KEYS``, ``API_ENCRYPTION_KEYS``): the API
  seals with public keys and never needs them. In production :func:`refuse_decryption_keys` stops
  the app from being built; elsewhere it logs an error (tests run API and worker code in one process).
- **Example secrets on a reachable address**: while :func:`tradefleet.config.example_secrets` finds
  any (``JWT_SECRET_KEY=changethis``...), :class:`ExampleSecretsGuard` answers 503 to every request
  that reaches the server on an address that is not loopback, so a server started with
  ``--host 0.0.0.0`` on defaults cannot be used from another machine (anyone could sign tokens).
  ASGI gives the app no bind address before requests come in: the address each request reached
  (``scope["server"]``) is what is checked, so the loopback interface of such a server still works.
"""

from __future__ import annotations

import ipaddress
import json
import logging

from starlette.types import ASGIApp, Receive, Scope, Send

from tradefleet.config import Settings, decryption_keys_held, example_secrets

log = logging.getLogger(__name__)


class DecryptionKeysRefused(RuntimeError):
    """The API was given a key that opens stored exchange keys, in production."""


def refuse_decryption_keys(settings: Settings) -> None:
    """Raise :class:`DecryptionKeysRefused` naming the settings when ``settings`` (production) hold
    ``VAULT_PRIVATE_KEYS`` or ``API_ENCRYPTION_KEYS``; outside production log an error instead."""
    held = decryption_keys_held(settings)
    if not held:
        return
    message = (f"the API must not hold {' or '.join(held)} (they open stored exchange keys; only the "
               "Celery workers that check keys and trade live get them): remove them from the API's environment")
    if settings.ENVIRONMENT == "production":
        raise DecryptionKeysRefused(f"refusing to start: {message}")
    log.error("%s (allowed outside production only)", message)


def _reached_on_loopback(scope: Scope) -> bool:
    server = scope.get("server")
    if not server or server[1] is None:  # a Unix socket: only this machine reaches it
        return True
    try:
        address = ipaddress.ip_address(server[0])
    except ValueError:
        return True  # not an address (an in-process test client's "testserver")
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # "::ffff:127.0.0.1" on a dual-stack socket
    return address.is_loopback


class ExampleSecretsGuard:
    """Pure ASGI middleware: 503 ``{"detail", "errors": [{"field", "message"}]}`` (one error per
    setting) for every HTTP request, and a refused handshake for every WebSocket, that reaches the
    server on a non-loopback address while ``problems`` is not empty."""

    def __init__(self, app: ASGIApp, *, problems: list[str]) -> None:
        self.app = app
        self.problems = problems
        self._logged = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.problems or scope["type"] not in ("http", "websocket") or _reached_on_loopback(scope):
            await self.app(scope, receive, send)
            return
        names = ", ".join(p.split(":", 1)[0] for p in self.problems)
        if not self._logged:
            log.error("refusing requests on %s: example secrets in use (%s); set real secrets to serve "
                      "beyond loopback", scope["server"][0], names)
            self._logged = True
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps({
            "detail": f"this server runs with example secrets ({names}) and serves loopback only",
            "errors": [{"field": p.split(":", 1)[0], "message": p.split(":", 1)[1].strip()} for p in self.problems],
        }).encode()
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def install_exposure_checks(app, settings: Settings) -> None:  # noqa: ANN001 - a FastAPI app
    """:func:`refuse_decryption_keys`, then :class:`ExampleSecretsGuard` as the outermost middleware."""
    refuse_decryption_keys(settings)
    app.add_middleware(ExampleSecretsGuard, problems=example_secrets(settings))
