"""Admin control of every user's runs and of live trading as a whole. Every route requires
an admin (403 otherwise), checked on the server by the router's dependency."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query
from sqlmodel import SQLModel

from tradefleet.api.deps import CurrentAdmin, SessionDep, get_current_admin
from tradefleet.api.params import Offset
from tradefleet.execution.risk import get_halt, set_halt
from tradefleet.models import HaltPublic, HaltUpdate, RunPublic, RunStatus
from tradefleet.services import admin_runs as service

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(get_current_admin)])


class AdminRunPublic(RunPublic):
    owner_id: uuid.UUID
    owner_email: str


class AdminRunsPublic(SQLModel):
    data: list[AdminRunPublic]
    count: int


def _public(run, email: str) -> AdminRunPublic:  # noqa: ANN001 - a Run
    return AdminRunPublic(**RunPublic.from_run(run).model_dump(), owner_id=run.owner_id, owner_email=email)


@router.get("/runs", response_model=AdminRunsPublic)
def list_runs(session: SessionDep, status: RunStatus | None = None,
              user: str | None = Query(None, max_length=255, description="owner id or part of the e-mail"),
              limit: int = Query(100, ge=1, le=1000), offset: int = Offset) -> AdminRunsPublic:
    """Every user's runs, newest first, with the owner's e-mail."""
    rows, count = service.list_runs(session=session, status=status, user=user, limit=limit, offset=offset)
    return AdminRunsPublic(data=[_public(run, email) for run, email in rows], count=count)


@router.post("/runs/{run_id}/stop", response_model=AdminRunPublic)
def stop_run(run_id: uuid.UUID, session: SessionDep, admin: CurrentAdmin) -> AdminRunPublic:
    """Stop any user's run and cancel its open orders (its position is kept)."""
    run = service.stop_run(session=session, admin=admin, run_id=run_id)
    return _public(run, service.owner_email(session=session, run=run))


@router.post("/runs/{run_id}/kill", response_model=AdminRunPublic)
def kill_run(run_id: uuid.UUID, session: SessionDep, admin: CurrentAdmin) -> AdminRunPublic:
    """Kill any user's run: stop it, cancel its open orders, close its position at market."""
    run = service.kill_run(session=session, admin=admin, run_id=run_id)
    return _public(run, service.owner_email(session=session, run=run))


@router.get("/halt", response_model=HaltPublic)
def get_trading_halt(session: SessionDep) -> HaltPublic:
    """Whether live trading is halted for everyone, why, and since when."""
    halt = get_halt(session, fresh=True)
    return HaltPublic(halted=halt.halted, reason=halt.reason, at=halt.at)


@router.put("/halt", response_model=HaltPublic)
def put_trading_halt(body: HaltUpdate, session: SessionDep, admin: CurrentAdmin) -> HaltPublic:
    """Halt (or resume) live trading for everyone: while halted no new order is sent, runs keep
    their status and each live tick records a ``halted`` event."""
    halt = set_halt(session=session, halted=body.halted, reason=body.reason, by_user_id=admin.id)
    return HaltPublic(halted=halt.halted, reason=halt.reason, at=halt.at)
