"""Bounded query parameters shared by the list routes.

Every integer a client can send is bounded so that it fits the database's 64-bit columns and the datetime
range: an out-of-range value is a 422 naming the parameter, never an overflow inside a query.
"""

from __future__ import annotations

from enum import Enum

from fastapi import Query

MAX_OFFSET = 1_000_000_000
"""Largest ``skip`` / ``offset`` of a list route (far beyond any stored list)."""
MAX_EPOCH_MS = 32_503_680_000_000
"""Largest epoch-millisecond query value: 3000-01-01T00:00:00Z."""

Skip = Query(0, ge=0, le=MAX_OFFSET, description="rows to skip")
Offset = Query(0, ge=0, le=MAX_OFFSET, description="rows to skip")


class SortOrder(str, Enum):
    """The direction of a list route's rows: ``asc`` oldest first, ``desc`` newest first."""

    asc = "asc"
    desc = "desc"


def sort_order_query(key: str):  # noqa: ANN201 - a FastAPI Query
    """The ``order`` query parameter of a list whose rows are ordered by ``key``; ``asc`` by default."""
    return Query(SortOrder.asc, description=f"``asc``: oldest first, ``desc``: newest first (by {key}); "
                                            "``skip`` and ``limit`` count in this direction")


def epoch_ms_query(description: str):  # noqa: ANN201 - a FastAPI Query
    """An optional epoch-millisecond query parameter, ``0 <= value <= MAX_EPOCH_MS``."""
    return Query(None, ge=0, le=MAX_EPOCH_MS, description=description)


__all__ = ["MAX_EPOCH_MS", "MAX_OFFSET", "Offset", "Skip", "SortOrder", "epoch_ms_query", "sort_order_query"]
