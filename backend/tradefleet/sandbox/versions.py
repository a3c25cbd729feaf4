"""The code of a strategy version: its :class:`~tradefleet.sandbox.StrategyProxy`, by version id.

Versions are immutable, so a version's proxy is built once per process from the source stored in its
row (``load_strategy(source, label=filename, trusted=origin == "bundled")``) and reused by the API, the
engine and backtests. The runner behind it is keyed by the source's content hash: a run pinned to an old
version keeps executing exactly that code after its file was edited.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from sqlmodel import Session, select

from tradefleet.db import session_scope
from tradefleet.models import StrategyVersion, VersionOrigin, VersionStatus


class UnknownVersion(LookupError):
    """No strategy version has that id."""


_proxies: dict[uuid.UUID, Any] = {}
_lock = threading.Lock()


def strategy_for_version(version_id: uuid.UUID, *, session: Session | None = None) -> Any:
    """The ``StrategyProxy`` of version ``version_id``, cached per process.

    ``session``: read the row through it (else a short session of its own). Raises
    :class:`UnknownVersion`, and the sandbox's ``StrategyLoadError`` / ``SandboxUnavailable`` when the
    stored file cannot be loaded here (nothing is cached then: a later call tries again).
    """
    proxy = _proxies.get(version_id)
    if proxy is not None:
        return proxy
    statement = select(StrategyVersion.filename, StrategyVersion.source, StrategyVersion.origin).where(
        StrategyVersion.id == version_id)
    if session is not None:
        row = session.exec(statement).first()
    else:
        with session_scope() as own:
            row = own.exec(statement).first()
    if row is None:
        raise UnknownVersion(str(version_id))
    filename, source, origin = row
    from tradefleet.sandbox import load_strategy

    proxy = load_strategy(source.encode("utf-8"), label=filename, trusted=origin == VersionOrigin.bundled)
    with _lock:
        _proxies.setdefault(version_id, proxy)
    return _proxies[version_id]


def current_bundled_version_id(session: Session, name: str) -> uuid.UUID | None:
    """The latest approved ``bundled`` version of ``name``: what a run or backtest stored before versions
    existed (only a name) is pinned to on first use. None when there is none."""
    return session.exec(
        select(StrategyVersion.id)
        .where(StrategyVersion.name == name, StrategyVersion.origin == VersionOrigin.bundled,
               StrategyVersion.status == VersionStatus.approved)
        .order_by(StrategyVersion.version.desc())
    ).first()


__all__ = ["UnknownVersion", "current_bundled_version_id", "strategy_for_version"]
