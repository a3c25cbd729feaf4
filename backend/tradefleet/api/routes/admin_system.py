"""Platform administration: system health and strategy switches. Admins only (403)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, StrictBool

from tradefleet.api.deps import CurrentAdmin, SessionDep, get_current_admin
from tradefleet.services import strategy_catalog
from tradefleet.services.system import system_status

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(get_current_admin)])


@router.get("/system")
def system(session: SessionDep) -> dict[str, Any]:
    """The platform's health for the admin page. Always 200 (a part that is down is reported, not raised)::

        {"checked_at": iso,
         "database": {"ok", "dialect", "error"?},
         "redis": {"configured", "ok" (null without Redis), "version"?, "used_memory_bytes"?, "error"?},
         "broker": {"transport", "ok", "queues": [{"name", "depth"}], "error"?},
         "workers": {"alive", "stale_after_s", "workers": [{"hostname", "pid", "beat_at", "alive"}]},
         "runs": {"created": n, "running": n, "paused": n, "stopped": n},
         "tick_lag": {"running", "max_seconds_since_tick", "max_candles_behind",
                      "runs": [{"run_id", "owner_email", "strategy", "market", "last_candle_ms",
                                "last_tick_at", "seconds_since_tick", "candles_behind", "candle_age_s"}]}}

    ``workers``, ``runs`` and ``tick_lag`` are null when the database is down. Queue depth counts
    messages waiting, not tasks being run. See :mod:`tradefleet.services.system` for the lag measures."""
    return system_status(session)


class StrategySwitch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: StrictBool


class StrategySwitchPublic(BaseModel):
    name: str
    enabled: bool
    updated_at: datetime


@router.patch("/strategies/{name}", response_model=StrategySwitchPublic)
def switch_strategy(switch: StrategySwitch, session: SessionDep, admin: CurrentAdmin,
                    name: str = Path(min_length=1, max_length=100)) -> StrategySwitchPublic:
    """Enable or disable a strategy by name. Disabled: hidden from ``GET /strategies``, refused (422 on
    ``strategy``) for new runs, run starts and backtests; **runs already running keep running**.
    404 for a name no loadable strategy has (and that was never switched)."""
    setting = strategy_catalog.set_enabled(session=session, name=name, enabled=switch.enabled, admin=admin)
    return StrategySwitchPublic(name=setting.name, enabled=setting.enabled, updated_at=setting.updated_at)
