"""The strategy catalog."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from tradefleet.api.deps import SessionDep
from tradefleet.config import get_settings
from tradefleet.services.strategies import disabled_names
from tradefleet.strategy.guard import StrategyError, call_guarded
from tradefleet.strategy.registry import get_registry

router = APIRouter(prefix="/strategies", tags=["strategies"])


class StrategyPublic(BaseModel):
    name: str
    description: str
    timeframe: str
    startup_candles: int | None
    stoploss: float | None
    params_schema: dict[str, Any]


@router.get("", response_model=list[StrategyPublic])
def list_strategies(session: SessionDep) -> list[StrategyPublic]:
    """Every loadable strategy an admin has not disabled: name, description, intended timeframe and
    parameter JSON schema."""
    out = []
    disabled = disabled_names(session)
    for klass in get_registry().all():
        if klass.name in disabled:
            continue
        try:  # may be a property of the parameters: report it for the defaults
            startup = call_guarded(lambda: int(klass(klass.validate_params({})).startup_candles),
                                   timeout_s=get_settings().STRATEGY_TIMEOUT_S)
        except StrategyError:
            startup = None
        out.append(StrategyPublic(
            name=klass.name, description=klass.description(), timeframe=klass.timeframe,
            startup_candles=startup, stoploss=klass.stoploss,
            params_schema=klass.params_schema()))
    return out
