"""Strategy versions: every strategy the platform can run, as immutable rows.

A version is one file's exact bytes (``source``, ``content_hash``) with the manifest its runner produced
when the file was validated. Files of ``STRATEGIES_DIR`` become ``bundled`` versions, approved as they
are; an author's upload is an ``upload`` version that goes ``validating`` → ``invalid`` or
``pending_review`` → ``approved`` / ``rejected`` (by an admin). ``version`` numbers the versions of one
catalog ``name`` 1, 2, 3...; it is given when a version passes validation (bundled files: at once).

Runs and backtests pin one version (``strategy_version_id``): a newer version of the same name never
changes them. Nothing in a version is updated after it left ``validating`` except its review.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from pydantic import ConfigDict
from sqlalchemy import Column, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy import Uuid as SAUuid
from sqlmodel import Field, SQLModel

from tradefleet.models._types import JSONType, dt_column, enum_column, utcnow
from tradefleet.models.input_types import Label


class VersionOrigin(str, enum.Enum):
    """``bundled``: a file of ``STRATEGIES_DIR``; ``upload``: sent by an author through the API."""

    bundled = "bundled"
    upload = "upload"


class VersionStatus(str, enum.Enum):
    """``validating`` until the ``strategies.validate`` task ran; ``invalid`` (the report says why) or
    ``pending_review``; then ``approved`` (in the catalog) or ``rejected`` (with ``review_reason``)."""

    validating = "validating"
    invalid = "invalid"
    pending_review = "pending_review"
    approved = "approved"
    rejected = "rejected"


class StrategyVersion(SQLModel, table=True):
    __tablename__ = "strategy_version"
    __table_args__ = (
        UniqueConstraint("name", "version", name="uq_strategy_version_name_version"),
        # The same author sending the same bytes twice is refused (409 on ``file``).
        UniqueConstraint("author_id", "content_hash", name="uq_strategy_version_author_hash"),
        Index("ix_strategy_version_status_created", "status", "created_at"),
        Index("ix_strategy_version_author_created", "author_id", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str | None = Field(default=None, sa_column=Column(String(100), nullable=True))
    """Catalog name from the manifest; null while validating (and when the file never loaded)."""
    version: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    origin: VersionOrigin = Field(sa_column=enum_column(VersionOrigin))
    author_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(SAUuid, ForeignKey("user.id", ondelete="SET NULL"), nullable=True))
    filename: str = Field(sa_column=Column(String(255), nullable=False))
    source: str = Field(sa_column=Column(Text, nullable=False))
    size_bytes: int = Field(sa_column=Column(Integer, nullable=False))
    content_hash: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    """sha256 of the file's bytes, hex."""
    status: VersionStatus = Field(default=VersionStatus.validating, sa_column=enum_column(VersionStatus))
    manifest: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))
    """``StrategyManifest.to_json()`` as the validating runner produced it."""
    report: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))
    """The validation report: ``{"ok": bool, "steps": [{"name", "ok", "message"}, ...]}``."""
    review_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    reviewed_by: uuid.UUID | None = Field(
        default=None, sa_column=Column(SAUuid, ForeignKey("user.id", ondelete="SET NULL"), nullable=True))
    reviewed_at: datetime | None = Field(default=None, sa_column=dt_column(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=dt_column())


class StrategyVersionPublic(SQLModel):
    """A version as its author (or an admin) sees it, without the source."""

    id: uuid.UUID
    name: str | None
    version: int | None
    origin: VersionOrigin
    filename: str
    size_bytes: int
    content_hash: str
    status: VersionStatus
    manifest: dict[str, Any] | None
    report: dict[str, Any] | None
    review_reason: str | None
    reviewed_at: datetime | None
    created_at: datetime


class StrategyVersionsPublic(SQLModel):
    data: list[StrategyVersionPublic]
    count: int


class StrategyVersionAdmin(StrategyVersionPublic):
    """A version in the admin's review list: who uploaded it."""

    author_id: uuid.UUID | None
    author_email: str | None
    reviewed_by: uuid.UUID | None


class StrategyVersionsAdmin(SQLModel):
    data: list[StrategyVersionAdmin]
    count: int


class StrategyVersionDetail(StrategyVersionAdmin):
    """One version for the admin's review page: with its source."""

    source: str


class StrategySource(SQLModel):
    """``GET /strategies/uploads/{id}/source``."""

    filename: str
    source: str


class StrategyVersionListed(SQLModel):
    """An approved version in ``GET /strategies/{name}/versions`` (no source, no report)."""

    id: uuid.UUID
    name: str
    version: int
    origin: VersionOrigin
    author: str
    description: str
    timeframe: str
    params_schema: dict[str, Any]
    created_at: datetime
    reviewed_at: datetime | None


class ReviewReject(SQLModel):
    """Body of ``POST /admin/strategy-versions/{id}/reject``: the reason the author reads."""

    model_config = ConfigDict(extra="forbid")

    reason: Label = Field(min_length=1, max_length=1000)


class RunVersionMove(SQLModel):
    """Body of ``POST /runs/{id}/strategy-version``."""

    model_config = ConfigDict(extra="forbid")

    version_id: uuid.UUID


_numbers: dict[uuid.UUID, int | None] = {}
"""Per process: version id -> version number (versions are immutable once numbered)."""


def version_number(session: Any, version_id: uuid.UUID | None) -> int | None:
    """The ``version`` of ``version_id`` (None for None or an unnumbered version), cached per process."""
    if version_id is None or session is None:
        return None
    if version_id in _numbers:
        return _numbers[version_id]
    from sqlmodel import select

    number = session.exec(select(StrategyVersion.version).where(StrategyVersion.id == version_id)).first()
    if number is not None:
        if len(_numbers) > 100_000:
            _numbers.clear()
        _numbers[version_id] = number
    return number
