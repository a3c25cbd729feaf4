"""Platform administration. Every route here is for admins only (403 for other users)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from tradefleet.api.deps import SessionDep, get_current_admin
from tradefleet.models import VersionOrigin
from tradefleet.services import strategy_catalog as catalog_service
from tradefleet.services.strategies import disabled_names
from tradefleet.sandbox.registry import get_registry

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(get_current_admin)])


class StrategyFile(BaseModel):
    name: str
    description: str
    file: str
    timeframe: str
    enabled: bool = True
    """False when an admin disabled it (``PATCH /admin/strategies/{name}``): hidden from traders."""
    version: int
    """The latest approved version (what new runs get)."""
    origin: VersionOrigin
    author: str


class BrokenStrategyFile(BaseModel):
    file: str
    error: str


class StrategyCatalog(BaseModel):
    strategies: list[StrategyFile]
    broken: list[BrokenStrategyFile]


@router.get("/strategies", response_model=StrategyCatalog)
def strategy_catalog(session: SessionDep) -> StrategyCatalog:
    """Every strategy of the catalog (bundled and approved uploads) at its latest approved version, with
    its file and whether it is enabled, and every file of ``STRATEGIES_DIR`` that failed to load (syntax
    or import error, no hook, bad default, duplicate name) with its error."""
    disabled = disabled_names(session)
    strategies = []
    for entry in catalog_service.catalog(session=session, include_disabled=True):
        row, manifest = entry.version, entry.version.manifest or {}
        strategies.append(StrategyFile(name=row.name, description=manifest.get("description", ""), file=row.filename,
                                       timeframe=manifest.get("timeframe", ""), enabled=row.name not in disabled,
                                       version=row.version, origin=row.origin, author=entry.author))
    broken = [BrokenStrategyFile(file=e.filename, error=e.error) for e in get_registry().entries() if e.error]
    return StrategyCatalog(strategies=strategies, broken=sorted(broken, key=lambda b: b.file))
