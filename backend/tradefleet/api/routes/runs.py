"""Strategy runs of the current user. Every route is owner-scoped: another user's run is a 404."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Query, status
from sqlmodel import SQLModel

from tradefleet.api.deps import CurrentUser, SessionDep
from tradefleet.api.params import Skip, SortOrder, epoch_ms_query, sort_order_query
from tradefleet.models import (
    EquitySnapshot,
    EquitySnapshotPublic,
    Fill,
    FillPublic,
    Order,
    OrderPublic,
    RunCreate,
    RunEvent,
    RunEventPublic,
    RunPublic,
    RunsPublic,
    RunVersionMove,
    Trade,
    TradePublic,
    TradeStatus,
)
from tradefleet.services import runs as service

router = APIRouter(prefix="/runs", tags=["runs"])

Limit = Query(500, ge=1, le=5000)


def _direction(order: SortOrder, *columns: Any) -> tuple[Any, ...]:
    """``columns`` (the sort key, then its tie-breakers) ascending or descending, as ``order`` asks."""
    return tuple(column.desc() if order == SortOrder.desc else column.asc() for column in columns)


@router.post("", response_model=RunPublic, status_code=status.HTTP_201_CREATED)
def create_run(run_in: RunCreate, session: SessionDep, user: CurrentUser) -> RunPublic:
    """Create a run (status ``created``); validated against the strategy and the exchange's markets."""
    return RunPublic.from_run(service.create_run(session=session, owner=user, run_in=run_in))


@router.get("", response_model=RunsPublic)
def list_runs(session: SessionDep, user: CurrentUser, skip: int = Skip,
              limit: int = Query(100, ge=1, le=1000)) -> RunsPublic:
    runs, count = service.list_runs(session=session, owner=user, skip=skip, limit=limit)
    return RunsPublic(data=[RunPublic.from_run(r) for r in runs], count=count)


class KillAllPublic(SQLModel):
    killed: int


@router.post("/kill-all", response_model=KillAllPublic)
def kill_all(session: SessionDep, user: CurrentUser) -> KillAllPublic:
    """The trader's kill switch: stop every active run of mine and cancel their open orders (live
    orders are cancelled on the exchange by a worker). Positions are kept; ``/{id}/kill`` closes one."""
    return KillAllPublic(killed=service.kill_all(session=session, owner=user))


@router.get("/{run_id}", response_model=RunPublic)
def get_run(run_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> RunPublic:
    """Status, wallet, position and PnL (quote currency) of one run."""
    return RunPublic.from_run(service.get_run_or_404(session=session, owner=user, run_id=run_id))


@router.post("/{run_id}/start", response_model=RunPublic)
def start_run(run_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> RunPublic:
    return RunPublic.from_run(service.start_run(session=session, owner=user, run_id=run_id))


@router.post("/{run_id}/strategy-version", response_model=RunPublic,
             responses={409: {"description": "the run is running"}})
def move_run_version(run_id: uuid.UUID, body: RunVersionMove, session: SessionDep, user: CurrentUser) -> RunPublic:
    """Move a run that is not running (created, paused, stopped) to another approved version of its
    strategy; its parameters are validated again by that version (422 on ``params.<name>``)."""
    return RunPublic.from_run(service.move_run_version(session=session, owner=user, run_id=run_id,
                                                       version_id=body.version_id))


@router.post("/{run_id}/stop", response_model=RunPublic)
def stop_run(run_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> RunPublic:
    return RunPublic.from_run(service.stop_run(session=session, owner=user, run_id=run_id))


@router.post("/{run_id}/kill", response_model=RunPublic)
def kill_run(run_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> RunPublic:
    """Stop the run now, cancel its open orders and close its position at market (live: carried out
    by a worker right after this reply; paper: at once, at the last price)."""
    return RunPublic.from_run(service.kill_run(session=session, owner=user, run_id=run_id))


@router.get("/{run_id}/orders", response_model=list[OrderPublic])
def list_orders(run_id: uuid.UUID, session: SessionDep, user: CurrentUser, skip: int = Skip,
                limit: int = Limit, order: SortOrder = sort_order_query("creation time")) -> list[Order]:
    """The run's orders by creation time (``order=desc``: newest first)."""
    return service.list_children(session=session, owner=user, run_id=run_id, model=Order,
                                 order_by=_direction(order, Order.created_at, Order.client_order_id),
                                 skip=skip, limit=limit)


@router.get("/{run_id}/fills", response_model=list[FillPublic])
def list_fills(run_id: uuid.UUID, session: SessionDep, user: CurrentUser, skip: int = Skip,
               limit: int = Limit, order: SortOrder = sort_order_query("the order they were recorded in")) -> list[Fill]:
    """The run's fills in the order they were recorded (``order=desc``: newest first)."""
    return service.list_children(session=session, owner=user, run_id=run_id, model=Fill,
                                 order_by=_direction(order, Fill.id), skip=skip, limit=limit)


@router.get("/{run_id}/trades", response_model=list[TradePublic])
def list_trades(run_id: uuid.UUID, session: SessionDep, user: CurrentUser, skip: int = Skip,
                limit: int = Limit, include_open: bool = False,
                order: SortOrder = sort_order_query("opening")) -> list[Trade]:
    """Closed round trips (entry and exit), oldest first (``order=desc``: newest first); ``include_open``
    adds the open one."""
    where = None if include_open else Trade.status == TradeStatus.closed
    return service.list_children(session=session, owner=user, run_id=run_id, model=Trade,
                                 order_by=_direction(order, Trade.id), skip=skip, limit=limit, where=where)


@router.get("/{run_id}/events", response_model=list[RunEventPublic])
def list_events(run_id: uuid.UUID, session: SessionDep, user: CurrentUser, skip: int = Skip,
                limit: int = Limit, order: SortOrder = sort_order_query("the order they were recorded in")
                ) -> list[RunEvent]:
    """The run's events (log lines, fills, status changes) as recorded (``order=desc``: newest first)."""
    return service.list_children(session=session, owner=user, run_id=run_id, model=RunEvent,
                                 order_by=_direction(order, RunEvent.id), skip=skip, limit=limit)


@router.get("/{run_id}/equity", response_model=list[EquitySnapshotPublic])
def list_equity(run_id: uuid.UUID, session: SessionDep, user: CurrentUser, skip: int = Skip,
                limit: int = Limit,
                since_ms: int | None = epoch_ms_query("only snapshots of candles opened after this time (epoch ms)"),
                points: int | None = Query(None, ge=2, le=5000, description="downsample the whole curve "
                                           "to about this many snapshots (first and last kept)")
                ) -> list[EquitySnapshot]:
    """One snapshot per evaluated candle: cash, position, close price and equity (quote currency).
    With ``points`` (the dashboard's small equity lines), evenly spaced snapshots of the whole
    run instead, oldest first, always including the first and the last; ``skip``/``limit``/``since_ms``
    do not apply then."""
    if points is not None:
        return service.equity_points(session=session, owner=user, run_id=run_id, points=points)
    where = EquitySnapshot.candle_ms > since_ms if since_ms is not None else None
    return service.list_children(session=session, owner=user, run_id=run_id, model=EquitySnapshot,
                                 order_by=EquitySnapshot.candle_ms, skip=skip, limit=limit, where=where)
