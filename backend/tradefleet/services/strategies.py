"""Admin switches on strategies: which names an admin disabled (every version of each). The switch is
set by :func:`tradefleet.services.strategy_catalog.set_enabled`, which checks the name against the catalog.

A disabled strategy is hidden from the catalog (``GET /api/v1/strategies``) and cannot be used by a new
run, a run being (re)started, or a backtest (422 on ``strategy``). Runs already running keep running: the
engine does not read the switch, so disabling never stops a trader's position mid-trade; an admin who
needs that stops the runs. A name without a row is enabled.
"""

from __future__ import annotations

from sqlmodel import Session, select

from tradefleet.errors import validation_error
from tradefleet.models import StrategySetting


def disabled_names(session: Session) -> set[str]:
    """Names of the strategies an admin has disabled."""
    return set(session.exec(select(StrategySetting.name).where(StrategySetting.enabled.is_(False))).all())


def is_enabled(session: Session, name: str) -> bool:
    setting = session.get(StrategySetting, name)
    return setting is None or setting.enabled


def ensure_enabled(session: Session, name: str) -> None:
    """Raise a 422 on ``strategy`` when ``name`` is disabled."""
    if not is_enabled(session, name):
        raise validation_error("strategy", f"strategy {name!r} is disabled by an administrator")
