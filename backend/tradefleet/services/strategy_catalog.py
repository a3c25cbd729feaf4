"""The strategy catalog over versions: bundled files become versions, traders see the latest approved
version of each name, runs and backtests resolve the version they pin.

- :func:`sync_bundled`: every loadable file of ``STRATEGIES_DIR`` (through the registry's entries) is an
  approved ``bundled`` version, once per content: an edited file is a new version of its name, an
  unchanged one nothing. Broken files stay out (the admin page lists them with their error).
- :func:`catalog`: per name, the latest approved version; bundled names only while a file of
  ``STRATEGIES_DIR`` still defines them; names an admin disabled (:mod:`tradefleet.services.strategies`)
  left out; :func:`set_enabled` sets that switch.
- :func:`resolve_version`: the version a new run or backtest pins: the one asked for
  (``strategy_version_id``, an approved version of that name) or the latest approved one.
- :func:`strategy_for_version`: the version's ``StrategyProxy`` (:mod:`tradefleet.sandbox.versions`).

Names: a bundled strategy's name is the platform's; an uploaded name belongs to the first author whose
version of it reached review. Uploads that take someone else's name fail validation.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import defer
from sqlmodel import Session, select

from tradefleet.errors import NotFoundError, validation_error
from tradefleet.models import StrategySetting, StrategyVersion, User, VersionOrigin, VersionStatus
from tradefleet.models._types import utcnow
from tradefleet.sandbox.registry import get_registry
from tradefleet.sandbox.versions import UnknownVersion, current_bundled_version_id, strategy_for_version
from tradefleet.services import strategies as switches

log = logging.getLogger(__name__)

BUNDLED_AUTHOR = "Tradefleet"
"""The author shown for the strategies that ship in ``STRATEGIES_DIR``."""

NAME_HOLDING = (VersionStatus.pending_review, VersionStatus.approved)
"""An uploaded version in one of these states holds its name for its author."""


@dataclass(frozen=True)
class CatalogEntry:
    """One strategy of the catalog: its latest approved ``version`` (the row, source not loaded) and the
    ``author`` shown to traders."""

    version: StrategyVersion
    author: str


def author_name(user: User | None) -> str:
    """The name shown for an author: ``display_name``, else the e-mail's local part."""
    if user is None:
        return "unknown author"
    return user.display_name or user.email.split("@", 1)[0]


def _loadable_entries() -> dict[str, object]:
    """Name -> registry entry of each loadable file of ``STRATEGIES_DIR`` (the first file, by name, when
    two define the same strategy)."""
    out: dict[str, object] = {}
    for entry in sorted(get_registry().entries(), key=lambda e: e.filename):
        if entry.strategy is None or entry.error:
            continue
        out.setdefault(entry.strategy.name, entry)
    return out


def next_version_number(session: Session, name: str) -> int:
    """1 + the highest version number of ``name`` (1 for a name without versions)."""
    highest = session.exec(select(func.max(StrategyVersion.version)).where(StrategyVersion.name == name)).one()
    return int(highest or 0) + 1


def sync_bundled(*, session: Session) -> list[StrategyVersion]:
    """Record every loadable file of ``STRATEGIES_DIR`` whose content is not the latest bundled version of
    its name as a new approved ``bundled`` version; commit. Returns the versions created.

    A name an author already holds (an upload in review or approved) is not taken over: that file is
    logged and skipped. Two processes syncing at once: the second one's insert fails on the unique
    ``(name, version)`` and is rolled back (the first one's versions stand)."""
    loadable = _loadable_entries()
    if not loadable:
        return []
    # One statement reads everything the decision needs, so it comes from one snapshot: a process that
    # commits the same versions after this read makes the insert below fail on ``(name, version)``
    # instead of recording the same file again under the next number.
    latest: dict[str, tuple[int, str]] = {}
    highest: dict[str, int] = {}
    held: set[str] = set()
    for name, number, origin, digest, version_status in session.exec(
            select(StrategyVersion.name, StrategyVersion.version, StrategyVersion.origin,
                   StrategyVersion.content_hash, StrategyVersion.status)
            .where(StrategyVersion.name.in_(list(loadable)))):
        highest[name] = max(number, highest.get(name, 0))
        if origin == VersionOrigin.bundled and (name not in latest or number > latest[name][0]):
            latest[name] = (number, digest)
        if origin == VersionOrigin.upload and version_status in NAME_HOLDING:
            held.add(name)
    changed = [name for name, entry in loadable.items()
               if name not in latest or latest[name][1] != entry.content_hash]
    if not changed:
        return []
    created = []
    now = utcnow()
    numbers = {name: highest.get(name, 0) + 1 for name in changed}
    for name in changed:
        entry = loadable[name]
        if name in held:
            log.warning("strategy file %s: the name %r belongs to an uploaded strategy; not offered", entry.filename,
                        name)
            continue
        row = StrategyVersion(
            name=name, version=numbers[name], origin=VersionOrigin.bundled,
            filename=entry.filename, source=entry.source.decode("utf-8"), size_bytes=len(entry.source),
            content_hash=entry.content_hash, status=VersionStatus.approved,
            manifest=entry.strategy.manifest.to_json(), report=None, reviewed_at=now, created_at=now)
        session.add(row)
        created.append(row)
    if not created:
        return []
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        log.info("bundled strategies were recorded by another process meanwhile")
        return []
    for name in changed:
        if name in held:
            continue
        log.info("bundled strategy %s: version %s recorded", name, next(r.version for r in created if r.name == name))
    return created


def bundled_names(session: Session) -> set[str]:
    """Names that belong to the platform: defined by a loadable file of ``STRATEGIES_DIR`` now, or by a
    bundled version recorded before."""
    names = set(_loadable_entries())
    names |= set(session.exec(select(StrategyVersion.name).where(
        StrategyVersion.origin == VersionOrigin.bundled).distinct()).all())
    return names


def name_holder(session: Session, name: str) -> uuid.UUID | None:
    """The author holding the uploaded ``name`` (their first version of it that reached review), or None."""
    return session.exec(
        select(StrategyVersion.author_id)
        .where(StrategyVersion.name == name, StrategyVersion.origin == VersionOrigin.upload,
               StrategyVersion.status.in_(NAME_HOLDING))
        .order_by(StrategyVersion.created_at)
    ).first()


def _authors(session: Session, rows: list[StrategyVersion]) -> dict[uuid.UUID, User]:
    ids = {r.author_id for r in rows if r.author_id is not None}
    if not ids:
        return {}
    return {u.id: u for u in session.exec(select(User).where(User.id.in_(list(ids))))}


def _shown_author(row: StrategyVersion, authors: dict[uuid.UUID, User]) -> str:
    if row.origin == VersionOrigin.bundled:
        return BUNDLED_AUTHOR
    return author_name(authors.get(row.author_id))


def catalog(*, session: Session, include_disabled: bool = False, sync: bool = True) -> list[CatalogEntry]:
    """The strategies traders can pick, sorted by name: per name its latest approved version (see the
    module docstring for which names are offered). ``include_disabled``: also names an admin disabled.
    ``sync``: first :func:`sync_bundled`."""
    if sync:
        sync_bundled(session=session)
    present = set(_loadable_entries())
    rows = session.exec(select(StrategyVersion).options(defer(StrategyVersion.source))
                        .where(StrategyVersion.status == VersionStatus.approved)).all()
    best: dict[str, StrategyVersion] = {}
    for row in rows:
        if row.origin == VersionOrigin.bundled and row.name not in present:
            continue  # its file was removed or is broken now: withdrawn (pinned runs keep their version)
        if row.name not in best or row.version > best[row.name].version:
            best[row.name] = row
    disabled = set() if include_disabled else switches.disabled_names(session)
    chosen = [best[name] for name in sorted(best) if name not in disabled]
    authors = _authors(session, chosen)
    return [CatalogEntry(version=row, author=_shown_author(row, authors)) for row in chosen]


def available_names(session: Session, *, sync: bool = True) -> list[str]:
    """Names of the catalog (enabled or not), sorted. ``sync``: first :func:`sync_bundled` (which may
    commit: pass False while holding row locks)."""
    return [e.version.name for e in catalog(session=session, include_disabled=True, sync=sync)]


def resolve_version(*, session: Session, name: str, version_id: uuid.UUID | None = None) -> StrategyVersion:
    """The version a new run or backtest of ``name`` pins: ``version_id`` when given (it must be an
    approved version of ``name``), else the latest approved one.

    Raises a 422 on ``strategy`` for an unknown or disabled name, and on ``strategy_version_id`` for an
    id that is not an approved version of that name (the same message whether it exists or not)."""
    entries = {e.version.name: e for e in catalog(session=session, include_disabled=True)}
    if name not in entries:
        raise validation_error("strategy", f"unknown strategy {name!r} (available: {', '.join(sorted(entries))})")
    switches.ensure_enabled(session, name)
    if version_id is None:
        return entries[name].version
    row = session.get(StrategyVersion, version_id)
    if row is None or row.status != VersionStatus.approved or row.name != name:
        raise validation_error("strategy_version_id", f"not an approved version of {name!r}")
    return row


def ensure_available(session: Session, name: str) -> None:
    """Raise a 422 on ``strategy`` when ``name`` is no longer offered (a bundled file removed or broken)
    or is disabled. Never commits."""
    if name not in available_names(session, sync=False):
        raise validation_error("strategy", f"strategy {name!r} is no longer available")
    switches.ensure_enabled(session, name)


def pinned_version_id(session: Session, *, name: str, version_id: uuid.UUID | None) -> uuid.UUID | None:
    """``version_id``, or for a row stored before versions (only a name) the current bundled version of
    ``name`` (None when there is none)."""
    if version_id is not None:
        return version_id
    return current_bundled_version_id(session, name)


def approved_versions(*, session: Session, name: str) -> list[CatalogEntry]:
    """Every approved version of catalog strategy ``name``, newest first; 404 when traders cannot pick
    ``name`` (unknown or disabled)."""
    if name not in {e.version.name for e in catalog(session=session)}:
        raise NotFoundError(f"strategy {name!r} not found")
    rows = list(session.exec(select(StrategyVersion).options(defer(StrategyVersion.source))
                             .where(StrategyVersion.name == name, StrategyVersion.status == VersionStatus.approved)
                             .order_by(StrategyVersion.version.desc())).all())
    authors = _authors(session, rows)
    return [CatalogEntry(version=row, author=_shown_author(row, authors)) for row in rows]


def set_enabled(*, session: Session, name: str, enabled: bool, admin: User) -> StrategySetting:
    """Enable or disable ``name`` and commit. 404 when the catalog has no strategy of that name and it
    has no switch yet (a switch already set can be changed even while its file is broken or removed)."""
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


__all__ = [
    "BUNDLED_AUTHOR", "CatalogEntry", "UnknownVersion", "approved_versions", "author_name", "available_names",
    "bundled_names", "catalog", "ensure_available", "name_holder", "next_version_number", "pinned_version_id",
    "resolve_version", "set_enabled", "strategy_for_version", "sync_bundled",
]
