"""Authors' strategy uploads and their review. Keyword-only, session first; commits.

An upload is stored at once as a ``validating`` version (immutable from then on: its bytes, hash and
file name), committed, audited (``strategy.uploaded``), then the task ``strategies.validate`` is enqueued
with its id (:mod:`tradefleet.services.strategy_validation` is its body). An admin approves or rejects a
version in ``pending_review`` (``strategy.approved`` / ``strategy.rejected`` in the audit log).

Who sees what: an author lists and reads their own versions only (another author's is a 404); a
version's source goes to its author and to admins, nobody else.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from pathlib import PurePosixPath, PureWindowsPath

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import defer
from sqlmodel import Session, select

from tradefleet.config import get_settings
from tradefleet.errors import ConflictError, DomainError, NotFoundError, PermissionDeniedError, validation_error
from tradefleet.models import Role, StrategyVersion, User, VersionOrigin, VersionStatus
from tradefleet.models._types import utcnow
from tradefleet.services import audit
from tradefleet.services.ownership import get_owned_or_404

log = logging.getLogger(__name__)

TASK_NAME = "strategies.validate"

_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,250}\.py$")


class ServiceUnavailable(DomainError):
    status_code = 503
    detail = "service unavailable"


class PayloadTooLarge(DomainError):
    status_code = 413
    detail = "payload too large"


def can_upload(user: User) -> bool:
    """Authors and admins may upload strategies."""
    return user.role in (Role.author, Role.admin)


def ensure_can_upload(user: User) -> None:
    """403 unless ``user`` is an author or an admin."""
    if not can_upload(user):
        raise PermissionDeniedError("only authors and admins upload strategies (ask an admin for the author role)")


def clean_filename(raw: str | None) -> str:
    """The file's own name (any folder part a client sent dropped); 422 on ``file`` unless it is a
    ``.py`` name of letters, digits, ``_ . - `` and spaces."""
    name = PureWindowsPath(PurePosixPath(raw or "").name).name.strip()
    if not name.lower().endswith(".py"):
        raise validation_error("file", "must be a Python file (.py)")
    if not _FILENAME.match(name):
        raise validation_error("file", "the file name may hold letters, digits, spaces and _ . - and must end in .py")
    return name


def check_upload_bytes(data: bytes) -> str:
    """The file's text; 422 on ``file`` when it is empty, not UTF-8 or holds NUL bytes, 413 when it is larger
    than ``STRATEGY_UPLOAD_MAX_BYTES``."""
    limit = get_settings().STRATEGY_UPLOAD_MAX_BYTES
    if len(data) > limit:
        raise PayloadTooLarge(f"file: larger than the limit of {limit:,} bytes", field="file")
    if not data.strip():
        raise validation_error("file", "is empty")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise validation_error("file", f"is not UTF-8 text (byte {exc.start} is not valid UTF-8)") from None
    if "\x00" in text:
        raise validation_error("file", "holds NUL bytes: not a text file")
    return text


def enqueue_validation(version_id: uuid.UUID) -> None:
    """Send ``strategies.validate`` with the id to the broker (tests replace this function)."""
    from tradefleet.jobs.app import send_task

    send_task(TASK_NAME, str(version_id))


def upload_version(*, session: Session, author: User, filename: str | None, data: bytes) -> StrategyVersion:
    """Store an upload as a ``validating`` version, audit it, commit, then enqueue its validation.

    Raises 403 for a user who is neither author nor admin; 422 / 413 on ``file`` (see
    :func:`clean_filename`, :func:`check_upload_bytes`); 409 on ``file`` when this author already
    uploaded the same bytes or has ``STRATEGY_UPLOAD_MAX_VERSIONS`` versions; 503 when the task cannot be
    queued (the version is then ``invalid`` with that reason). Nothing is written on a 4xx.
    """
    ensure_can_upload(author)
    settings = get_settings()
    name = clean_filename(filename)
    text = check_upload_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    duplicate = session.exec(select(StrategyVersion.id, StrategyVersion.status).where(
        StrategyVersion.author_id == author.id, StrategyVersion.content_hash == digest)).first()
    if duplicate is not None:
        raise ConflictError(f"file: you already uploaded exactly this file (version {duplicate[0]}, "
                            f"{duplicate[1].value})", field="file")
    count = session.exec(select(func.count()).select_from(StrategyVersion)
                         .where(StrategyVersion.author_id == author.id)).one()
    if count >= settings.STRATEGY_UPLOAD_MAX_VERSIONS:
        raise ConflictError(f"file: you have {count} uploaded versions, the limit per author "
                            f"(STRATEGY_UPLOAD_MAX_VERSIONS is {settings.STRATEGY_UPLOAD_MAX_VERSIONS})",
                            field="file")
    version = StrategyVersion(origin=VersionOrigin.upload, author_id=author.id, filename=name, source=text,
                              size_bytes=len(data), content_hash=digest, status=VersionStatus.validating)
    session.add(version)
    try:
        session.flush()
    except IntegrityError:  # the same bytes uploaded twice at the same moment
        session.rollback()
        raise ConflictError("file: you already uploaded exactly this file", field="file") from None
    audit.record(session=session, actor=author, action="strategy.uploaded", target=version,
                 detail={"filename": name, "size_bytes": len(data), "content_hash": digest}, commit=False)
    session.commit()
    session.refresh(version)
    # After the commit: the worker must find the row (Celery user guide, "Database transactions").
    try:
        enqueue_validation(version.id)
    except Exception as exc:  # noqa: BLE001 - any broker failure
        log.error("cannot enqueue the validation of strategy version %s: %s", version.id, exc, exc_info=exc)
        version.status = VersionStatus.invalid
        version.report = {"ok": False, "steps": [{"name": "queued", "ok": False,
                                                  "message": "could not be queued: the task broker is unavailable"}]}
        session.commit()
        raise ServiceUnavailable("the validation could not be queued; try again shortly") from None
    return version


def list_own_versions(*, session: Session, author: User, limit: int = 100,
                      offset: int = 0) -> tuple[list[StrategyVersion], int]:
    """The author's uploaded versions, newest first (sources not loaded), and their count."""
    where = (StrategyVersion.author_id == author.id, StrategyVersion.origin == VersionOrigin.upload)
    count = session.exec(select(func.count()).select_from(StrategyVersion).where(*where)).one()
    rows = session.exec(select(StrategyVersion).options(defer(StrategyVersion.source)).where(*where)
                        .order_by(StrategyVersion.created_at.desc(), StrategyVersion.id)
                        .offset(offset).limit(limit)).all()
    return list(rows), int(count)


def get_own_version_or_404(*, session: Session, author: User, version_id: uuid.UUID) -> StrategyVersion:
    """The author's own uploaded version; 404 for anyone else's (indistinguishable from none)."""
    return get_owned_or_404(session=session, model=StrategyVersion, row_id=version_id, owner_id=author.id,
                            what="strategy version", owner_column="author_id",
                            where=(StrategyVersion.origin == VersionOrigin.upload,))


def get_source_or_404(*, session: Session, user: User, version_id: uuid.UUID) -> StrategyVersion:
    """A version whose source ``user`` may read: their own upload, or any version for an admin. 404
    otherwise (a trader or another author learns nothing, not even that it exists)."""
    version = session.get(StrategyVersion, version_id)
    if version is None or not (user.role == Role.admin or
                               (version.author_id == user.id and version.origin == VersionOrigin.upload)):
        raise NotFoundError("strategy version not found")
    return version


# --- review (admins) -----------------------------------------------------------------------------


def admin_list_versions(*, session: Session, status: VersionStatus | None = None, limit: int = 100,
                        offset: int = 0) -> tuple[list[tuple[StrategyVersion, str | None]], int]:
    """Uploaded versions with their author's e-mail, oldest first within ``pending_review`` (the review
    queue) and newest first otherwise; and their count."""
    where = [StrategyVersion.origin == VersionOrigin.upload]
    if status is not None:
        where.append(StrategyVersion.status == status)
    count = session.exec(select(func.count()).select_from(StrategyVersion).where(*where)).one()
    order = (StrategyVersion.created_at.asc() if status == VersionStatus.pending_review
             else StrategyVersion.created_at.desc())
    rows = session.exec(select(StrategyVersion, User.email).options(defer(StrategyVersion.source))
                        .join(User, User.id == StrategyVersion.author_id, isouter=True).where(*where)
                        .order_by(order, StrategyVersion.id).offset(offset).limit(limit)).all()
    return [(version, email) for version, email in rows], int(count)


def admin_get_version(*, session: Session, version_id: uuid.UUID) -> tuple[StrategyVersion, str | None]:
    """Any version with its author's e-mail; 404 when there is none."""
    version = session.get(StrategyVersion, version_id)
    if version is None:
        raise NotFoundError("strategy version not found")
    author = session.get(User, version.author_id) if version.author_id else None
    return version, author.email if author else None


def _pending_for_review(session: Session, version_id: uuid.UUID) -> StrategyVersion:
    from tradefleet.db import lock_for_write

    lock_for_write(session)
    version = session.exec(select(StrategyVersion).where(StrategyVersion.id == version_id).with_for_update()).first()
    if version is None:
        raise NotFoundError("strategy version not found")
    if version.status != VersionStatus.pending_review:
        raise ConflictError(f"only a version pending review can be reviewed; this one is {version.status.value}")
    return version


def approve_version(*, session: Session, admin: User, version_id: uuid.UUID) -> StrategyVersion:
    """``pending_review`` → ``approved``: the version enters the catalog (as the latest of its name when
    it is the highest approved version number). 404; 409 for any other status, or when its name has been
    taken meanwhile (by a bundled file or another author). Audited; commits."""
    version = _pending_for_review(session, version_id)
    from tradefleet.services.strategy_catalog import bundled_names, name_holder

    if version.name in bundled_names(session):
        raise ConflictError(f"the name {version.name!r} now belongs to a strategy bundled with the platform")
    holder = name_holder(session, version.name)
    if holder is not None and holder != version.author_id:
        raise ConflictError(f"the name {version.name!r} belongs to another author's strategy")
    version.status = VersionStatus.approved
    version.reviewed_by = admin.id
    version.reviewed_at = utcnow()
    version.review_reason = None
    audit.record(session=session, actor=admin, action="strategy.approved", target=version,
                 detail={"name": version.name, "version": version.version, "author_id": str(version.author_id)},
                 commit=False)
    session.commit()
    session.refresh(version)
    return version


def reject_version(*, session: Session, admin: User, version_id: uuid.UUID, reason: str) -> StrategyVersion:
    """``pending_review`` → ``rejected`` with ``reason`` (1-1000 characters, shown to the author). 404 /
    409 (any other status) / 422 on ``reason``. Audited; commits."""
    reason = reason.strip()
    if not reason:
        raise validation_error("reason", "must say why (1 to 1000 characters)")
    if any(not (ch.isprintable() or ch in "\n\t") for ch in reason):
        raise validation_error("reason", "must be text without control characters")
    version = _pending_for_review(session, version_id)
    version.status = VersionStatus.rejected
    version.reviewed_by = admin.id
    version.reviewed_at = utcnow()
    version.review_reason = reason
    audit.record(session=session, actor=admin, action="strategy.rejected", target=version,
                 detail={"name": version.name, "version": version.version, "author_id": str(version.author_id),
                         "reason": reason}, commit=False)
    session.commit()
    session.refresh(version)
    return version


__all__ = [
    "TASK_NAME", "admin_get_version", "admin_list_versions", "approve_version", "can_upload",
    "check_upload_bytes", "clean_filename", "enqueue_validation", "ensure_can_upload", "get_own_version_or_404",
    "get_source_or_404", "list_own_versions", "reject_version", "upload_version",
]
