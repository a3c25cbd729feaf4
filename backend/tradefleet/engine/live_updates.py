"""The live updates of a tick (see :mod:`tradefleet.events.updates`): built before the commit from the rows
being written, published after it, so a browser never hears of a tick that was rolled back.

Per run, in the order a chart and a log want them: candles, then orders, their fills, the round trip,
the equity at the close, the run's log lines; then the status of runs the tick paused.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from tradefleet.engine.run_rows import RowBuffer, RunRow
from tradefleet.engine.tick_rows import TickRows
from tradefleet.engine.window import TickWindow
from tradefleet.events.outbox import Outbox
from tradefleet.events.updates import (
    CandleUpdate,
    EquityUpdate,
    FillUpdate,
    LogUpdate,
    OrderUpdate,
    StatusUpdate,
    TradeUpdate,
)
from tradefleet.models import RunStatus

LIVE_CANDLES_PER_TICK = 20
"""A run catching up publishes its last this-many evaluated candles, not all of them."""


def tick_updates(runs: list[RunRow], window: TickWindow, rows: TickRows, buffer: RowBuffer,
                 fill_ids: list[int], event_ids: list[int], paused: list[RunRow]) -> Outbox:
    """The updates of one tick: ``fill_ids`` and ``event_ids`` are the ids the bulk inserts of
    ``buffer.fills`` and ``buffer.events`` returned, in order."""
    box = Outbox()
    fills: dict[uuid.UUID, list[FillUpdate]] = defaultdict(list)
    for row, fill_id in zip(buffer.fills, fill_ids):
        fills[row["run_id"]].append(FillUpdate.of(row["run_id"], {**row, "id": fill_id}))
    logs: dict[uuid.UUID, list[LogUpdate]] = defaultdict(list)
    for row, event_id in zip(buffer.events, event_ids):
        logs[row["run_id"]].append(LogUpdate.of(row["run_id"], {**row, "id": event_id}))
    last_snapshot = {s["run_id"]: s for s in buffer.snapshots}
    for run in runs:
        for i in list(run.stepped)[-LIVE_CANDLES_PER_TICK:]:
            box.add(run.owner_id, CandleUpdate(
                run_id=run.id, time_ms=int(window.times[i]), open=float(window.open[i]),
                high=float(window.high[i]), low=float(window.low[i]), close=float(window.close[i]),
                volume=float(window.volume[i])))
        for order in rows.touched_orders.get(run.id, {}).values():
            box.add(run.owner_id, OrderUpdate.of(run.id, order))
        for fill in fills.get(run.id, []):
            box.add(run.owner_id, fill)
        for trade in {id(t): t for t in rows.touched_trades.get(run.id, [])}.values():
            box.add(run.owner_id, TradeUpdate.of(run.id, trade))
        s = last_snapshot.get(run.id)
        if s is not None:
            box.add(run.owner_id, EquityUpdate.of(s))
        for event in logs.get(run.id, []):
            box.add(run.owner_id, event)
    for run in paused:
        box.add(run.owner_id, StatusUpdate(run_id=run.id, status=RunStatus.paused, status_reason=run.status_reason))
    return box


def pause_updates(runs: list, events: list[dict[str, Any]], event_ids: list[int]) -> Outbox:
    """The updates of runs paused outside a tick: each pause event as a log line, then each run's status."""
    box = Outbox()
    owner = {run.id: run.owner_id for run in runs}
    for row, event_id in zip(events, event_ids):
        box.add(owner[row["run_id"]], LogUpdate.of(row["run_id"], {**row, "id": event_id}))
    for run in runs:
        box.add(run.owner_id, StatusUpdate.of(run))
    return box


__all__ = ["LIVE_CANDLES_PER_TICK", "pause_updates", "tick_updates"]
