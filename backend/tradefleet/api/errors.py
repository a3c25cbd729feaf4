"""One format for every error response, and the domain errors services raise.

Every error reply has the body::

    {"detail": "human-readable summary", "errors": [{"field": "params.fast", "message": "..."}]}

``errors`` is present only for validation errors (422). ``field`` is a dotted path into the request:
body fields without the ``body.`` prefix (``password``, ``params.fast``, ``items.0.symbol``), ``body`` for
the body as a whole (missing, malformed JSON), and ``query.<name>`` / ``path.<name>`` / ``header.<name>`` for
the other parts. Submitted values are never echoed back (they may be passwords or API secrets).

Services raise :class:`DomainError` subclasses (or :func:`validation_error`); the handlers installed by
:func:`install_error_handlers` turn them into responses, so services never import FastAPI's
``HTTPException``. Unexpected exceptions become ``500 {"detail": "internal error"}`` and are logged with
their traceback; the client never sees a trace or SQL, only ``internal error (request id <id>)``.
Unknown routes (404), wrong methods (405, with ``Allow``), rate limits (429, with ``Retry-After``) and
oversized bodies (413) use the same format.

A database that is only busy is not a server error: no free pooled connection within ``DB_POOL_TIMEOUT_S``
(``sqlalchemy.exc.TimeoutError``), SQLite's ``database is locked`` after ``DB_SQLITE_BUSY_TIMEOUT_S``, or
a PostgreSQL lock or statement timeout (SQLSTATE ``55P03`` / ``57014``), or PostgreSQL refusing a connection at
a connection limit (``53300``: the server's ``max_connections``, a role's or a database's) answer
``503 {"detail": "the database is busy, retry in 1 s"}`` with ``Retry-After: 1``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tradefleet.errors import (  # noqa: F401  (re-exported: the API's error vocabulary)
    ConflictError,
    DomainError,
    NotFoundError,
    PermissionDeniedError,
    validation_error,
)

logger = logging.getLogger(__name__)


class FieldError(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    """The body of every error reply (documented in the OpenAPI schema for every 4XX and 422)."""

    detail: str
    errors: list[FieldError] | None = None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": "client error (the error format of this module)"},
}
"""``responses=`` for routers: documents the error format for every 4xx reply."""


def document_error_format(app: FastAPI, *rules: Callable[[dict[str, Any]], None]) -> None:
    """Make the OpenAPI schema say what error replies really look like: FastAPI documents 422 as its own
    ``{"detail": [{"loc", "msg", "type"}]}``, which these handlers never send. Each of ``rules`` first
    edits the generated schema in place (``api/main.py`` passes the input guard's
    :func:`~tradefleet.api.validation.document_input_rules`)."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if getattr(app.state, "error_format_documented", False):
            return app.openapi_schema  # type: ignore[return-value]
        schema = original()
        for rule in rules:
            rule(schema)
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        if "HTTPValidationError" in schemas:
            schemas["HTTPValidationError"] = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas["HTTPValidationError"].pop("$defs", None)
            schemas["HTTPValidationError"]["title"] = "HTTPValidationError"
            schemas.setdefault("FieldError", FieldError.model_json_schema())
        app.state.error_format_documented = True
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def error_body(detail: Any, errors: Sequence[dict[str, str]] | None = None) -> dict[str, Any]:
    """The JSON body of every error reply."""
    body: dict[str, Any] = {"detail": detail}
    if errors is not None:
        body["errors"] = list(errors)
    return body


def _field_path(loc: Sequence[Any]) -> str:
    parts = [str(part) for part in loc]
    if parts and parts[0] == "body":
        parts = parts[1:] or ["body"]
    return ".".join(parts) or "body"


def _message(error: dict[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        ctx = error.get("ctx") or {}
        position = error["loc"][-1] if len(error.get("loc", ())) > 1 else None
        where = f" at character {position}" if isinstance(position, int) else ""
        return f"malformed JSON: {ctx.get('error', 'cannot be parsed')}{where}"
    message = str(error.get("msg", "invalid value"))
    # pydantic prefixes messages raised from custom validators; the prefix says nothing to a user.
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix):]
    return message


def validation_errors(errors: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """pydantic / FastAPI error dicts as ``[{"field", "message"}]``, without the submitted input."""
    out = []
    for error in errors:
        field = "body" if error.get("type") == "json_invalid" else _field_path(error.get("loc", ()))
        out.append({"field": field, "message": _message(error)})
    return out


def _summary(errors: list[dict[str, str]]) -> str:
    if not errors:
        return "invalid request"
    first = f"{errors[0]['field']}: {errors[0]['message']}"
    return first if len(errors) == 1 else f"{first} (and {len(errors) - 1} more)"


async def _request_validation_handler(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = validation_errors(exc.errors())
    return JSONResponse(error_body(_summary(errors), errors), status_code=422)


async def _http_exception_handler(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse(error_body(exc.detail), status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


async def _domain_error_handler(_request: Request, exc: DomainError) -> JSONResponse:
    errors = [{"field": exc.field, "message": _strip_field(exc)}] if exc.field else None
    if exc.status_code == 422 and errors is None:
        errors = []
    # Some domain errors carry headers (429 ``Retry-After``).
    return JSONResponse(error_body(exc.detail, errors), status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


def _strip_field(exc: DomainError) -> str:
    prefix = f"{exc.field}: "
    return exc.detail[len(prefix):] if exc.detail.startswith(prefix) else exc.detail


def internal_error_response(request_id: str | None) -> JSONResponse:
    """The reply to an unexpected exception: a generic message and the request id to quote to support
    (also in ``X-Request-ID``); never a trace, SQL or a path."""
    detail = f"internal error (request id {request_id})" if request_id else "internal error"
    headers = {"X-Request-ID": request_id} if request_id else None
    return JSONResponse(error_body(detail), status_code=500, headers=headers)


async def _unhandled_handler(request: Request, exc: Exception) -> JSONResponse:
    # The trace goes to the log only: it may hold SQL, parameters or paths the client must not see.
    request_id = request.scope.get("state", {}).get("request_id")
    if not getattr(exc, "tradefleet_logged", False):
        logger.error("unhandled error on %s %s (request id %s)", request.method, request.url.path, request_id,
                     exc_info=exc)
    return internal_error_response(request_id)


BUSY_RETRY_AFTER_S = 1
BUSY_DETAIL = f"the database is busy, retry in {BUSY_RETRY_AFTER_S} s"
# SQLSTATEs of PostgreSQL that mean "waited too long", not "broken": lock_not_available (lock_timeout,
# NOWAIT) and query_canceled (statement_timeout).
_PG_BUSY_SQLSTATES = {"55P03", "57014", "53300"}
# A refused connection carries no SQLSTATE in psycopg: PostgreSQL's messages for its connection limits
# (SQLSTATE 53300, too_many_connections: the server's max_connections, a role's or a database's limit).
_PG_FULL_MESSAGES = ("too many clients already", "remaining connection slots are reserved",
                     "too many connections for")


def busy_response() -> JSONResponse:
    """503 with ``Retry-After``: the database is saturated or locked for a moment, not broken."""
    return JSONResponse(error_body(BUSY_DETAIL), status_code=503,
                        headers={"Retry-After": str(BUSY_RETRY_AFTER_S)})


def is_database_busy(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is busy (pool exhausted, SQLite locked, a PostgreSQL lock or
    statement timeout) rather than broken."""
    if isinstance(exc, PoolTimeoutError):
        return True
    if isinstance(exc, OperationalError):
        orig = exc.orig
        if getattr(orig, "sqlstate", None) in _PG_BUSY_SQLSTATES:
            return True
        message = str(orig).lower()
        if type(orig).__module__.startswith("psycopg"):
            return any(text in message for text in _PG_FULL_MESSAGES)
        return type(orig).__module__.startswith("sqlite3") and ("database is locked" in message
                                                                 or "database is busy" in message)
    return False


async def _pool_timeout_handler(request: Request, exc: PoolTimeoutError) -> JSONResponse:
    logger.warning("database pool exhausted on %s %s: %s", request.method, request.url.path, exc)
    return busy_response()


async def _operational_error_handler(request: Request, exc: OperationalError) -> JSONResponse:
    if is_database_busy(exc):
        logger.warning("database busy on %s %s: %s", request.method, request.url.path, exc.orig)
        return busy_response()
    return await _unhandled_handler(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error reply the format of this module."""
    app.add_exception_handler(RequestValidationError, _request_validation_handler)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)  # type: ignore[arg-type]
    app.add_exception_handler(DomainError, _domain_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(PoolTimeoutError, _pool_timeout_handler)  # type: ignore[arg-type]
    app.add_exception_handler(OperationalError, _operational_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unhandled_handler)
