"""The strategy catalog: what traders can run and backtest, and the approved versions of each."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from tradefleet.api.deps import SessionDep
from tradefleet.models import StrategyVersionListed, VersionOrigin
from tradefleet.services import strategy_catalog as catalog_service

router = APIRouter(prefix="/strategies", tags=["strategies"])


class StrategyPublic(BaseModel):
    name: str
    description: str
    timeframe: str
    startup_candles: int | None
    stoploss: float | None
    params_schema: dict[str, Any]
    version_id: uuid.UUID
    """The latest approved version: what a new run or backtest pins unless it names another."""
    version: int
    origin: VersionOrigin
    author: str
    """The author's display name; ``Tradefleet`` for the strategies that ship with the platform."""
    created_at: datetime


def _manifest(entry: catalog_service.CatalogEntry) -> dict[str, Any]:
    return entry.version.manifest or {}


@router.get("", response_model=list[StrategyPublic])
def list_strategies(session: SessionDep) -> list[StrategyPublic]:
    """Every strategy traders can pick (an admin has not disabled it), at its latest approved version:
    name, description, intended timeframe, parameter JSON schema, version, origin and author."""
    out = []
    for entry in catalog_service.catalog(session=session):
        manifest, row = _manifest(entry), entry.version
        out.append(StrategyPublic(
            name=row.name, description=manifest.get("description", ""), timeframe=manifest.get("timeframe", ""),
            startup_candles=manifest.get("startup_candles"), stoploss=manifest.get("stoploss"),
            params_schema=manifest.get("params_schema") or {"type": "object", "properties": {}},
            version_id=row.id, version=row.version, origin=row.origin, author=entry.author,
            created_at=row.created_at))
    return out


@router.get("/{name}/versions", response_model=list[StrategyVersionListed])
def list_versions(name: str, session: SessionDep) -> list[StrategyVersionListed]:
    """The approved versions of strategy ``name``, newest first (a run may pin any of them); 404 for a
    name traders cannot pick."""
    out = []
    for entry in catalog_service.approved_versions(session=session, name=name):
        manifest, row = _manifest(entry), entry.version
        out.append(StrategyVersionListed(
            id=row.id, name=row.name, version=row.version, origin=row.origin, author=entry.author,
            description=manifest.get("description", ""), timeframe=manifest.get("timeframe", ""),
            params_schema=manifest.get("params_schema") or {"type": "object", "properties": {}},
            created_at=row.created_at, reviewed_at=row.reviewed_at))
    return out
