"""Backtests of the current user. Every route is owner-scoped: another user's backtest is a 404."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, Response, status

from tradefleet.api.deps import CurrentUser, SessionDep
from tradefleet.api.params import Skip
from tradefleet.models import BacktestCreate, BacktestDetail, BacktestPublic, BacktestsPublic
from tradefleet.services import backtests as service

router = APIRouter(prefix="/backtests", tags=["backtests"])


@router.post("", response_model=BacktestDetail, status_code=status.HTTP_202_ACCEPTED)
def create_backtest(backtest_in: BacktestCreate, session: SessionDep, user: CurrentUser) -> BacktestDetail:
    """Queue a backtest (status ``queued``); validated like a run, plus the date range. A worker runs it:
    poll ``GET /backtests/{id}`` for ``progress`` and the result.

    Per-user caps, each answered with a detail naming its setting and nothing stored: 409 at
    ``BACKTEST_MAX_STORED_PER_USER`` backtests kept; 429 with ``Retry-After`` at
    ``BACKTEST_MAX_ACTIVE_PER_USER`` queued or running, or when the candles to download would pass
    ``BACKTEST_DOWNLOAD_CANDLES_PER_DAY`` today (UTC); 422 on ``start`` when one range alone would."""
    backtest = service.create_backtest(session=session, owner=user, backtest_in=backtest_in)
    return BacktestDetail.from_backtest(backtest)


@router.get("", response_model=BacktestsPublic)
def list_backtests(session: SessionDep, user: CurrentUser, skip: int = Skip,
                   limit: int = Query(100, ge=1, le=1000)) -> BacktestsPublic:
    """The user's backtests, newest first, with their metrics but without trades and equity curves."""
    rows, count = service.list_backtests(session=session, owner=user, skip=skip, limit=limit)
    return BacktestsPublic(data=[BacktestPublic.from_backtest(b) for b in rows], count=count)


@router.get("/{backtest_id}", response_model=BacktestDetail)
def get_backtest(backtest_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> BacktestDetail:
    """Status and progress (percent, stage); once ``done``, the metrics, trades, equity curve (at most
    2,000 points) and look-ahead report; once ``failed``, the error."""
    return BacktestDetail.from_backtest(service.get_backtest_or_404(session=session, owner=user,
                                                                    backtest_id=backtest_id))


@router.delete("/{backtest_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_backtest(backtest_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> Response:
    """Delete a backtest (a running one stops mattering: its result is discarded)."""
    service.delete_backtest(session=session, owner=user, backtest_id=backtest_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
