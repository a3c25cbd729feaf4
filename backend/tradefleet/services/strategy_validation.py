"""Validating an uploaded strategy version: the body of the Celery task ``strategies.validate``.

:func:`validate_version` re-reads the version (only a ``validating`` one is worked on: a second delivery
does nothing), loads its source in a sandboxed runner (``load_strategy(source, label=filename,
trusted=False)``: uploads never run unsandboxed), checks that its name is the author's to take, and runs
the ``strategy check`` suite (:func:`tradefleet.backtest.check.check_strategy`: definition, parameters, a
short backtest on the recorded BTC/USDT 1h candles, the look-ahead check) within
``STRATEGY_VALIDATION_TIMEOUT_S``. The report's steps, in order: ``loads``, ``name``, ``definition``,
``parameters``, ``backtest``, ``lookahead``; the first failed step ends it.

Outcome, in one commit: ``pending_review`` with the manifest, the report and the next version number of
its name; or ``invalid`` with the report (a file that does not load, a sandbox that is unavailable, a
name that belongs to someone else, a failed step, the time budget spent).
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from tradefleet.config import get_settings
from tradefleet.db import lock_for_write, session_scope
from tradefleet.events.outbox import publish
from tradefleet.events.updates import StrategyUpdate
from tradefleet.models import StrategyVersion, VersionOrigin, VersionStatus
from tradefleet.services.strategy_catalog import bundled_names, name_holder, next_version_number
from tradefleet.backtest.check import CheckReport, check_strategy

log = logging.getLogger(__name__)


def _finish(version_id: uuid.UUID, *, report: CheckReport, name: str | None,
            manifest: dict[str, Any] | None) -> VersionStatus | None:
    """Write the outcome in one commit (retried when another version of the same name took the number
    at the same moment); None when the row is gone or no longer validating."""
    status = VersionStatus.pending_review if report.ok else VersionStatus.invalid
    for _attempt in range(5):
        with session_scope() as session:
            lock_for_write(session)
            row = session.exec(select(StrategyVersion).where(StrategyVersion.id == version_id)
                               .with_for_update()).first()
            if row is None or row.status != VersionStatus.validating:
                return None
            row.name = name
            row.manifest = manifest
            row.report = report.to_json()
            row.status = status
            if status == VersionStatus.pending_review:
                row.version = next_version_number(session, name)
            author_id = row.author_id
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                continue
        if author_id is not None:
            publish(author_id, StrategyUpdate(version_id=version_id, status=status, name=name))
        return status
    raise RuntimeError(f"could not number strategy version {version_id}")


def validate_version(version_id: uuid.UUID) -> VersionStatus | None:
    """Validate the uploaded version ``version_id`` (module docstring); returns its new status, or None
    when there was nothing to do (gone, or not ``validating``). Never raises: an unexpected error makes
    the version ``invalid`` with "internal error" (the traceback goes to the log)."""
    try:
        return _validate(version_id)
    except Exception:  # noqa: BLE001 - the author must see an outcome, the worker must carry on
        log.exception("strategy version %s: unexpected error in its validation", version_id)
        report = CheckReport()
        report.add("check", False, "internal error: the validation could not run; an admin can see why in the "
                                   "worker's log")
        return _finish(version_id, report=report, name=None, manifest=None)


def _validate(version_id: uuid.UUID) -> VersionStatus | None:
    from tradefleet.sandbox import SandboxUnavailable, StrategyLoadError, load_strategy

    settings = get_settings()
    started = time.monotonic()
    with session_scope() as session:
        row = session.get(StrategyVersion, version_id)
        if row is None or row.status != VersionStatus.validating or row.origin != VersionOrigin.upload:
            return None
        source, filename, author_id = row.source, row.filename, row.author_id
    report = CheckReport()
    try:
        proxy = load_strategy(source.encode("utf-8"), label=filename, trusted=False)
    except StrategyLoadError as exc:
        report.add("loads", False, f"{filename} does not load: {exc.message}")
        return _finish(version_id, report=report, name=None, manifest=None)
    except SandboxUnavailable as exc:
        report.add("loads", False, f"uploaded strategies cannot run on this server now: {exc}")
        return _finish(version_id, report=report, name=None, manifest=None)
    name = proxy.name
    manifest = proxy.manifest.to_json()
    with session_scope() as session:
        bundled = name in bundled_names(session)
        holder = name_holder(session, name)
    report.add("loads", True, f"{filename} loads and declares the strategy class {proxy.manifest.class_name}")
    if bundled or (holder is not None and holder != author_id):
        whose = "a strategy bundled with the platform" if bundled else "another author's strategy"
        report.add("name", False, f"the name {name!r} belongs to {whose}: rename the strategy class "
                                  "(or set its name)")
        return _finish(version_id, report=report, name=name, manifest=manifest)
    report.add("name", True, f"{name} is yours to publish")
    budget = settings.STRATEGY_VALIDATION_TIMEOUT_S - (time.monotonic() - started)
    try:
        checked = check_strategy(proxy, timeout_s=budget)
        report.steps.extend(checked.steps[1:])  # its "loads" is the one above
    except Exception as exc:  # noqa: BLE001 - a time limit or a runner fault outside a step
        log.warning("strategy version %s: the check stopped: %s", version_id, exc)
        report.add("check", False, f"the check could not finish: {exc or type(exc).__name__}")
    if report.ok and time.monotonic() - started > settings.STRATEGY_VALIDATION_TIMEOUT_S:
        report.add("time", False, f"validation took longer than its budget of "
                                  f"{settings.STRATEGY_VALIDATION_TIMEOUT_S:g} s")
    return _finish(version_id, report=report, name=name, manifest=manifest)


def stale_validations(older_than_s: float) -> list[uuid.UUID]:
    """Ids of uploads still ``validating`` after ``older_than_s`` seconds (their task was lost with a
    worker): a starting worker queues them again."""
    from datetime import timedelta

    from tradefleet.models._types import utcnow

    cutoff = utcnow() - timedelta(seconds=older_than_s)
    with session_scope() as session:
        return list(session.exec(select(StrategyVersion.id).where(
            StrategyVersion.status == VersionStatus.validating, StrategyVersion.created_at < cutoff)).all())


__all__ = ["stale_validations", "validate_version"]
