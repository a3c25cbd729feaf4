"""Domain errors: what services raise when a request cannot be done, framework-free.

The API turns them into replies (:mod:`tradefleet.api.errors`); workers and the CLI may catch them
too, so this module imports nothing of FastAPI.
"""

from __future__ import annotations


class DomainError(Exception):
    """A failure the client caused or can act on, raised by services.

    Subclasses set ``status_code`` and a default ``detail``; ``field`` (a dotted path into the request,
    e.g. ``params.fast``; see :mod:`tradefleet.api.errors`) makes the reply carry ``errors: [{"field", "message"}]``.
    """

    status_code: int = 400
    detail: str = "bad request"

    def __init__(self, detail: str | None = None, *, field: str | None = None,
                 status_code: int | None = None) -> None:
        if detail is not None:
            self.detail = detail
        if status_code is not None:
            self.status_code = status_code
        self.field = field
        super().__init__(self.detail)


class NotFoundError(DomainError):
    """404: the object does not exist or the caller may not see it (say the same in both cases)."""

    status_code = 404
    detail = "not found"


class ConflictError(DomainError):
    """409: the request clashes with the current state (a duplicate, a run already running)."""

    status_code = 409
    detail = "conflict"


class PermissionDeniedError(DomainError):
    """403: the caller is known but may not do this."""

    status_code = 403
    detail = "permission denied"


def validation_error(field: str, message: str) -> DomainError:
    """A 422 for a value the schema accepted but the domain rejects (e.g. a strategy parameter out of range).

    ``field`` is a dotted path without ``body.`` (``params.fast``); the reply is shaped exactly like the
    422 FastAPI produces for schema errors.
    """
    return DomainError(f"{field}: {message}", field=field, status_code=422)
