"""The input guard: characters no route accepts are refused before any route (or the database) sees them.

:class:`InputGuardMiddleware` (pure ASGI) checks, on every HTTP request, authenticated or not:

* the query string: every name and value, percent-decoded, must be valid UTF-8 without NUL, lone
  surrogates or C0/C1 control characters (field ``query.<name>``);
* the path: every segment, the same way (field ``path.<name>`` when an API route's parameter holds it,
  else ``path``);
* ``application/json`` bodies: every string and key, after JSON decoding (so ``"\\u0000"`` and a lone
  ``"\\ud800"`` are caught too), without NUL, lone surrogates or control characters other than tab, LF
  and CR (field: the dotted path, e.g. ``email``, ``params.fast``); a body that is not UTF-8, nests too
  deep or holds an integer too long to parse is refused as ``body``;
* ``application/x-www-form-urlencoded`` bodies (the login form) like the query string (field: the name).

A refused request gets ``422 {"detail": "<field>: <message>", "errors": [{"field", "message"}]}``
(:mod:`tradefleet.api.errors`) and reaches no route. Bidi overrides are refused by the body types that
hold labels (:mod:`tradefleet.models.input_types`), not here: free text may quote them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradefleet.api.errors import error_body
from tradefleet.models.input_types import unsafe_character

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects accepted in a JSON body."""


class Refused(Exception):
    """A field that cannot be accepted: ``field`` (dotted path) and ``message``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _printable(text: str) -> str:
    """``text`` for use in a field name: unsafe characters replaced by ``?``."""
    return "".join(char if unsafe_character(char, allow_bidi=True) is None else "?" for char in text)[:100] or "?"


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("is not valid UTF-8") from None


def check_urlencoded(raw: bytes, prefix: str) -> None:
    """Check a query string or form body; raises :class:`Refused` naming ``<prefix><name>``."""
    for pair in raw.split(b"&"):
        if not pair:
            continue
        name_raw, _, value_raw = pair.partition(b"=")
        name_bytes = unquote_to_bytes(name_raw.replace(b"+", b" "))
        try:
            name = _decode(name_bytes)
        except ValueError as exc:
            raise Refused(f"{prefix}{_printable(name_bytes.decode('utf-8', 'replace'))}", str(exc)) from None
        field = f"{prefix}{_printable(name)}"
        if reason := unsafe_character(name, allow_bidi=True):
            raise Refused(field, f"name {reason}")
        try:
            value = _decode(unquote_to_bytes(value_raw.replace(b"+", b" ")))
        except ValueError as exc:
            raise Refused(field, str(exc)) from None
        if reason := unsafe_character(value, allow_bidi=True):
            raise Refused(field, reason)


def check_json(value: Any) -> None:
    """Walk a decoded JSON document (iteratively); raises :class:`Refused` naming the dotted path of
    the first string or key holding NUL, a lone surrogate or a control character (tab, LF, CR allowed),
    or ``body`` when it nests deeper than :data:`MAX_JSON_DEPTH`."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if len(path) > MAX_JSON_DEPTH:
            raise Refused("body", f"nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, str):
            if reason := unsafe_character(item, allow_newlines=True, allow_bidi=True):
                raise Refused(".".join(path) or "body", reason)
        elif isinstance(item, dict):
            for key, child in item.items():
                key_path = (*path, _printable(key))
                if reason := unsafe_character(key, allow_bidi=True):
                    raise Refused(".".join(key_path), f"name {reason}")
                stack.append((child, key_path))
        elif isinstance(item, list):
            stack.extend((child, (*path, str(index))) for index, child in enumerate(item))


def _content_type(scope: Scope) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == b"content-type":
            return value.decode("latin-1").split(";", 1)[0].strip().lower()
    return ""


class InputGuardMiddleware:
    """See the module docstring. ``path_param_of(path, segment_index)`` names the route parameter that
    holds a path segment (:meth:`tradefleet.api.route_index.RouteIndex.param_at`), or None."""

    def __init__(self, app: ASGIApp, *, path_param_of: Callable[[str, int], str | None] | None = None,
                 allowed_methods: Callable[[str], set[str]] | None = None) -> None:
        self.app = app
        self.path_param_of = path_param_of
        self.allowed_methods = allowed_methods

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self._check_path(scope)
            check_urlencoded(scope.get("query_string", b""), "query.")
        except Refused as refused:
            await _refuse(send, refused)
            return
        # A method the path's own routes do not have is a 405, even when a route with a parameter there
        # would take the segment as a value ("GET /runs/kill-all" is not "GET /runs/{run_id}").
        method = scope.get("method", "GET")
        if self.allowed_methods is not None and method != "OPTIONS":
            allowed = self.allowed_methods(scope.get("path", ""))
            if allowed and method not in allowed:
                await _method_not_allowed(send, allowed)
                return

        kind = _content_type(scope)
        is_json = kind == "application/json" or kind.endswith("+json")
        is_form = kind == "application/x-www-form-urlencoded"
        if not (is_json or is_form) or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return

        messages: list[Message] = []
        body = bytearray()
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        try:
            if is_form:
                check_urlencoded(bytes(body), "")
            elif body.strip():
                self._check_json_body(bytes(body))
        except Refused as refused:
            await _refuse(send, refused)
            return

        replay = iter(messages)

        async def replayed() -> Message:
            for message in replay:
                return message
            return await receive()

        await self.app(scope, replayed, send)

    @staticmethod
    def _check_json_body(body: bytes) -> None:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused("body", "is not valid UTF-8") from None
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            return  # the route's own validation answers "malformed JSON" with the position
        except (ValueError, RecursionError):
            # An integer of more than 4,300 digits, or nesting beyond the parser's stack.
            raise Refused("body", "malformed JSON: a number too long or nesting too deep") from None
        check_json(document)

    def _check_path(self, scope: Scope) -> None:
        raw = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogateescape")
        raw = raw.split(b"?", 1)[0]
        for index, segment in enumerate(raw.split(b"/")):
            decoded = unquote_to_bytes(segment)
            try:
                text = _decode(decoded)
            except ValueError as exc:
                raise Refused(self._path_field(scope, index), str(exc)) from None
            if reason := unsafe_character(text, allow_bidi=True):
                raise Refused(self._path_field(scope, index), reason)

    def _path_field(self, scope: Scope, index: int) -> str:
        name = self.path_param_of(scope.get("path", ""), index) if self.path_param_of else None
        return f"path.{name}" if name else "path"


async def _method_not_allowed(send: Send, allowed: set[str]) -> None:
    from tradefleet.api.route_index import allow_header

    payload = json.dumps(error_body("Method Not Allowed")).encode()
    await send({"type": "http.response.start", "status": 405,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            (b"allow", allow_header(allowed).encode())]})
    await send({"type": "http.response.body", "body": payload})


async def _refuse(send: Send, refused: Refused) -> None:
    payload = json.dumps(error_body(f"{refused.field}: {refused.message}",
                                    [{"field": refused.field, "message": refused.message}])).encode()
    await send({"type": "http.response.start", "status": 422,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


__all__ = ["MAX_JSON_DEPTH", "InputGuardMiddleware", "Refused", "check_json", "check_urlencoded"]


def document_input_rules(schema: dict[str, Any]) -> None:
    """Write the guard's rules into an OpenAPI document, in place: every string of a query, path or form
    parameter gets :data:`~tradefleet.models.input_types.PLAIN_LINE_PATTERN`, every string of a JSON
    request body :data:`~tradefleet.models.input_types.PLAIN_TEXT_PATTERN`, unless it already has a
    ``pattern``, a ``format`` or an ``enum`` (labels carry their own, stricter pattern)."""
    from tradefleet.models.input_types import PLAIN_LINE_PATTERN, PLAIN_TEXT_PATTERN

    components = schema.get("components", {}).get("schemas", {})

    def mark(node: Any, pattern: str, seen: set[str]) -> None:
        stack = [node]
        while stack:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(item)
                continue
            if not isinstance(item, dict):
                continue
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[-1]
                if name not in seen and name in components:
                    seen.add(name)
                    stack.append(components[name])
            if item.get("type") == "string" and not {"pattern", "format", "enum", "const"} & set(item):
                item["pattern"] = pattern
            for key in ("properties", "items", "anyOf", "oneOf", "allOf", "additionalProperties", "prefixItems"):
                child = item.get(key)
                if isinstance(child, dict) and key == "properties":
                    stack.extend(child.values())
                elif child is not None and not isinstance(child, bool):
                    stack.append(child)

    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                if parameter.get("in") in ("query", "path"):
                    mark(parameter.get("schema", {}), PLAIN_LINE_PATTERN, set())
            content = operation.get("requestBody", {}).get("content", {})
            for media, body in content.items():
                if media == "application/json":
                    mark(body.get("schema", {}), PLAIN_TEXT_PATTERN, set())
                elif media == "application/x-www-form-urlencoded":
                    mark(body.get("schema", {}), PLAIN_LINE_PATTERN, set())
