"""Admin switches on strategies: disable or enable one by name (every version of it).

A disabled strategy is hidden from the catalog (``GET /api/v1/strategies``) and cannot be used by a new
run, a run being (re)started, or a backtest (422 on ``strategy``). Runs already running keep running: the
engine does not read the switch, so disabling never stops a trader's position mid-trade; an admin who
needs that stops the runs. A name without a row is enabled.
"""

from __future__ import annotations

from sqlmodel import Session, select

from tradefleet.errors import NotFoundError, validation_error
from tradefleet.models import StrategySetting, User
from tradefleet.models._types import utcnow


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


def set_enabled(*, session: Session, name: str, enabled: bool, admin: User) -> StrategySetting:
    """Enable or disable ``name`` and commit. 404 when the catalog has no strategy of that name and it
    has no switch yet (a switch already set can be changed even while its file is broken or removed)."""
    from tradefleet.services.strategy_catalog import available_names

    setting = session.get(StrategySetting, name)
    if setting is None:
        if name not in available_names(session):
            raise NotFoundError(f"strategy {name!r} not found")
        setting = StrategySetting(name=name, enabled=enabled)
    setting.enabled = enabled
    setting.updated_at = utcnow()
    setting.updated_by = admin.id
    session.add(setting)
    session.commit()
    session.refresh(setting)
    return setting
