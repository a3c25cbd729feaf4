"""Platform administration. Every route here is for admins only (403 for other users)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from tradefleet.api.deps import SessionDep, get_current_admin
from tradefleet.services.strategies import disabled_names
from tradefleet.strategy.registry import get_registry

if TYPE_CHECKING:
    from tradefleet.sandbox import StrategyProxy

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(get_current_admin)])


class StrategyFile(BaseModel):
    name: str
    description: str
    file: str
    timeframe: str
    enabled: bool = True
    """False when an admin disabled it (``PATCH /admin/strategies/{name}``): hidden from traders."""


class BrokenStrategyFile(BaseModel):
    file: str
    error: str


class StrategyCatalog(BaseModel):
    strategies: list[StrategyFile]
    broken: list[BrokenStrategyFile]


def _file_name(strategy: "StrategyProxy") -> str:
    return strategy.label  # the file's name only, never the server's path to it


@router.get("/strategies", response_model=StrategyCatalog)
def strategy_catalog(session: SessionDep) -> StrategyCatalog:
    """Every loadable strategy of ``STRATEGIES_DIR`` with its file and whether it is enabled, and every
    file that failed to load (syntax or import error, no hook, bad default, duplicate name) with its error."""
    registry = get_registry()
    disabled = disabled_names(session)
    return StrategyCatalog(
        strategies=[StrategyFile(name=k.name, description=k.description(), file=_file_name(k), timeframe=k.timeframe,
                                 enabled=k.name not in disabled)
                    for k in registry.all()],
        broken=[BrokenStrategyFile(file=b.path, error=b.error) for b in registry.broken()],
    )
