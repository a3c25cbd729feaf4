"""The live updates a trader's browser receives: one class per kind, each with one wire shape.

Every update is a frozen dataclass with a :class:`LiveUpdateKind` (the SSE ``event:``) and
:meth:`LiveUpdate.to_json` (its ``data``: a JSON object that names its ``run_id``, or ``backtest_id`` /
``version_id``). Publishers build them with these classes only (:class:`~tradefleet.events.outbox.Outbox`
accepts nothing else), so a payload has the same keys wherever it is produced. The frontend reads them in
``frontend/js/events.js`` and the pages.

=============  ==========================================================  ==============================
kind           ``data``                                                    published when
=============  ==========================================================  ==============================
``candle``     ``{run_id, time_ms, open, high, low, close, volume}``       a run evaluated a candle
``equity``     ``{run_id, candle_ms, equity, cash, position_amount,        a run's wallet at a close
               price}``
``order``      ``{run_id, order: OrderPublic}``                            an order placed, filled,
                                                                           rejected or cancelled
``fill``       ``{run_id, fill: FillPublic}``                              an order filled (in part)
``trade``      ``{run_id, trade: TradePublic}``                            a round trip opened or closed
``status``     ``{run_id, status, status_reason}``                         a run started, stopped, paused
``log``        ``{run_id, event: RunEventPublic}``                         every run event (strategy log
                                                                           lines, fills, skips)
``backtest``   ``{backtest_id, status, progress, stage, error}``           a backtest claimed, progressed,
                                                                           finished
``strategy``   ``{version_id, status, name}``                              an uploaded version validated
``session``    ``{token_version}``                                         the user's sessions changed;
                                                                           read by the stream itself
                                                                           (:mod:`tradefleet.stream_slots`),
                                                                           never forwarded to the browser
=============  ==========================================================  ==============================

Units: ``*_ms`` are UTC milliseconds; prices, equity and cash in the quote currency; amounts in the base
currency; ``progress`` in percent (0..100). Nested rows are the API's public schemas, serialised by
:func:`jsonable` (UUIDs and enums as strings, datetimes in ISO 8601 with their offset), so a ``fill`` in
the stream equals the row ``GET /runs/{id}/fills`` returns.
"""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from tradefleet.models import (
    BacktestStatus,
    FillPublic,
    OrderPublic,
    RunEventPublic,
    RunStatus,
    TradePublic,
)
from tradefleet.models.strategy_version import VersionStatus


class LiveUpdateKind(enum.StrEnum):
    """The kinds of live update: the SSE ``event:`` name of each (module docstring)."""

    candle = "candle"
    equity = "equity"
    order = "order"
    fill = "fill"
    trade = "trade"
    status = "status"
    log = "log"
    backtest = "backtest"
    strategy = "strategy"
    session = "session"


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: UUIDs as strings, datetimes as ``isoformat()``, enums as their
    value. Raises ``TypeError`` for anything else JSON cannot hold."""
    return json.loads(json.dumps(value, default=json_default))


def json_default(value: Any) -> Any:
    """The ``default=`` of :func:`json.dumps` for payloads (see :func:`jsonable`)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value"):  # enums
        return value.value
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


Row = Any
"""An ORM row (``Order``, ``Fill``, ``Trade``, ``RunEvent``) or a mapping with its public fields."""


@dataclass(frozen=True, slots=True)
class LiveUpdate:
    """One event for a user's channel. Subclasses set :attr:`kind` and implement :meth:`to_json`."""

    kind: ClassVar[LiveUpdateKind]

    def to_json(self) -> dict[str, Any]:
        """The ``data`` of the event: a dict of JSON values (see the module docstring for each kind)."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class CandleUpdate(LiveUpdate):
    """A candle the run evaluated: open time in UTC ms, prices in quote, volume in base."""

    kind: ClassVar[LiveUpdateKind] = LiveUpdateKind.candle
    run_id: uuid.UUID
    time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float

    def to_json(self) -> dict[str, Any]:
        return {"run_id": str(self.run_id), "time_ms": int(self.time_ms), "open": float(self.open),
                "high": float(self.high), "low": float(self.low), "close": float(self.close),
                "volume": float(self.volume)}


@dataclass(frozen=True, slots=True)
class EquityUpdate(LiveUpdate):
    """The run's wallet valued at the close of candle ``candle_ms``: ``equity`` and ``cash`` in quote,
    ``position_amount`` in base, ``price`` the close it was valued at."""

    kind: ClassVar[LiveUpdateKind] = LiveUpdateKind.equity
    run_id: uuid.UUID
    candle_ms: int
    equity: float
    cash: float
    position_amount: float
    price: float

    @classmethod
    def of(cls, snapshot: Mapping[str, Any]) -> EquityUpdate:
        """From an equity snapshot row (``run_id``, ``candle_ms``, ``equity``, ``cash``,
        ``position_amount``, ``price``)."""
        return cls(run_id=snapshot["run_id"], candle_ms=snapshot["candle_ms"], equity=snapshot["equity"],
                   cash=snapshot["cash"], position_amount=snapshot["position_amount"], price=snapshot["price"])

    def to_json(self) -> dict[str, Any]:
        return {"run_id": str(self.run_id), "candle_ms": self.candle_ms, "equity": self.equity, "cash": self.cash,
                "position_amount": self.position_amount, "price": self.price}


@dataclass(frozen=True, slots=True)
class OrderUpdate(LiveUpdate):
    """An order of the run as it is now (placed, filled, rejected or cancelled)."""

    kind: ClassVar[LiveUpdateKind] = LiveUpdateKind.order
    run_id: uuid.UUID
    order: OrderPublic

    @classmethod
    def of(cls, run_id: uuid.UUID, order: Row) -> OrderUpdate:
        """From an ``Order`` row or a mapping of its fields (read now, so the row may expire later)."""
        return cls(run_id=run_id, order=OrderPublic.model_validate(order))

    def to_json(self) -> dict[str, Any]:
        return {"run_id": str(self.run_id), "order": jsonable(self.order.model_dump())}


@dataclass(frozen=True, slots=True)
class FillUpdate(LiveUpdate):
    """An execution of (part of) an order of the run."""

    kind: ClassVar[LiveUpdateKind] = LiveUpdateKind.fill
    run_id: uuid.UUID
    fill: FillPublic

    @classmethod
    def of(cls, run_id: uuid.UUID, fill: Row) -> FillUpdate:
        """From a ``Fill`` row or a mapping of its fields, ``id`` included."""
        return cls(run_id=run_id, fill=FillPublic.model_validate(fill))

    def to_json(self) -> dict[str, Any]:
        return {"run_id": str(self.run_id), "fill": jsonable(self.fill.model_dump())}


@dataclass(frozen=True, slots=True)
class TradeUpdate(LiveUpdate):
    """A round trip of the run, opened or closed."""

    kind: ClassVar[LiveUpdateKind] = LiveUpdateKind.trade
    run_id: uuid.UUID
    trade: TradePublic

    @classmethod
    def of(cls, run_id: uuid.UUID, trade: Row) -> TradeUpdate:
        """From a ``Trade`` row or a mapping of its fields."""
        return cls(run_id=run_id, trade=TradePublic.model_validate(trade))

    def to_json(self) -> dict[str, Any]:
        return {"run_id": str(self.run_id), "trade": jsonable(self.trade.model_dump())}


@dataclass(frozen=True, slots=True)
class StatusUpdate(LiveUpdate):
    """The run's status and the reason the platform gave for it (``None`` when its owner changed it)."""

    kind: ClassVar[LiveUpdateKind] = LiveUpdateKind.status
    run_id: uuid.UUID
    status: RunStatus
    status_reason: str | None

    @classmethod
    def of(cls, run: Any) -> StatusUpdate:
        """From a run (a ``Run`` row or anything with ``id``, ``status`` and ``status_reason``)."""
        return cls(run_id=run.id, status=run.status, status_reason=run.status_reason)

    def to_json(self) -> dict[str, Any]:
        return {"run_id": str(self.run_id), "status": RunStatus(self.status).value,
                "status_reason": self.status_reason}


@dataclass(frozen=True, slots=True)
class LogUpdate(LiveUpdate):
    """A run event: a strategy log line, a fill, a skip, a pause..."""

    kind: ClassVar[LiveUpdateKind] = LiveUpdateKind.log
    run_id: uuid.UUID
    event: RunEventPublic

    @classmethod
    def of(cls, run_id: uuid.UUID, event: Row) -> LogUpdate:
        """From a ``RunEvent`` row or a mapping of its fields, ``id`` included."""
        return cls(run_id=run_id, event=RunEventPublic.model_validate(event))

    def to_json(self) -> dict[str, Any]:
        return {"run_id": str(self.run_id), "event": jsonable(self.event.model_dump())}


@dataclass(frozen=True, slots=True)
class BacktestUpdate(LiveUpdate):
    """A backtest's state: ``progress`` in percent, ``stage`` what it is doing, ``error`` why it failed."""

    kind: ClassVar[LiveUpdateKind] = LiveUpdateKind.backtest
    backtest_id: uuid.UUID
    status: BacktestStatus
    progress: int
    stage: str | None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"backtest_id": str(self.backtest_id), "status": BacktestStatus(self.status).value,
                "progress": self.progress, "stage": self.stage, "error": self.error}


@dataclass(frozen=True, slots=True)
class StrategyUpdate(LiveUpdate):
    """An uploaded strategy version's validation finished: its new status and the strategy's name."""

    kind: ClassVar[LiveUpdateKind] = LiveUpdateKind.strategy
    version_id: uuid.UUID
    status: VersionStatus
    name: str | None

    def to_json(self) -> dict[str, Any]:
        return {"version_id": str(self.version_id), "status": VersionStatus(self.status).value, "name": self.name}


@dataclass(frozen=True, slots=True)
class SessionUpdate(LiveUpdate):
    """The user's ``token_version`` or ``is_active`` changed: streams opened under another version end."""

    kind: ClassVar[LiveUpdateKind] = LiveUpdateKind.session
    token_version: int

    def to_json(self) -> dict[str, Any]:
        return {"token_version": self.token_version}


__all__ = ["BacktestUpdate", "CandleUpdate", "EquityUpdate", "FillUpdate", "LiveUpdate", "LiveUpdateKind",
           "LogUpdate", "OrderUpdate", "SessionUpdate", "StatusUpdate", "StrategyUpdate", "TradeUpdate",
           "jsonable", "json_default"]
