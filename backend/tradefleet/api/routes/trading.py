"""What every signed-in user may know of the platform's trading state: whether an admin halted live
trading, why and since when (``GET /api/v1/trading/halt``; admins set it with ``PUT /admin/halt``)."""

from __future__ import annotations

from fastapi import APIRouter

from tradefleet.api.deps import SessionDep
from tradefleet.execution.risk import get_halt
from tradefleet.models import HaltPublic

router = APIRouter(prefix="/trading", tags=["trading"])


@router.get("/halt", response_model=HaltPublic)
def get_trading_halt(session: SessionDep) -> HaltPublic:
    """Whether live trading is halted for everyone (no live order is sent; paper runs carry on), the
    admin's reason, and since when (UTC). Read from the halt cache (``HALT_CACHE_TTL_S``)."""
    halt = get_halt(session)
    return HaltPublic(halted=halt.halted, reason=halt.reason, at=halt.at)
