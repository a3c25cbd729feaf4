"""Per process: the validated parameters of a strategy class and the candles one evaluation needs
with them, so that the scheduler (sizing a market's window) and the tick (building the strategies)
validate a run's parameters once, not on every candle.

Keyed by ``(strategy class, parameters as JSON with sorted keys)``: an edited strategy file is a new
version with a new class, validated again. Failures are not remembered. At :data:`LIMIT` entries the
cache is emptied and fills again.
"""

from __future__ import annotations

import json
from typing import Any

LIMIT = 50_000

_known: dict[tuple[Any, str], tuple[dict[str, Any], int]] = {}


def params_key(params: dict[str, Any] | None) -> str:
    """Raw parameters as the cache's key: JSON with sorted keys."""
    return json.dumps(params, sort_keys=True)


def known(klass: Any, key: str) -> tuple[dict[str, Any], int] | None:
    """``(validated parameters, required candles)`` remembered for ``klass`` and ``key``, or ``None``."""
    return _known.get((klass, key))


def remember(klass: Any, key: str, params: dict[str, Any], required: int) -> None:
    """Remember ``klass``'s validated ``params`` for the raw parameters ``key`` and the candles one
    evaluation needs with them."""
    if len(_known) >= LIMIT:
        _known.clear()
    _known[(klass, key)] = (params, required)
