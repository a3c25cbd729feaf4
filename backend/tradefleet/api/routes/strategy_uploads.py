"""Authors' strategy uploads: send a file, follow its validation, read one's own versions and sources.

Uploading needs the role ``author`` or ``admin`` (403 otherwise). Every read is scoped to the caller's
own uploads: another author's version, and its source, are a 404.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, File, Query, UploadFile, status

from tradefleet.api.deps import CurrentUser, SessionDep
from tradefleet.api.params import Offset
from tradefleet.config import get_settings
from tradefleet.models import StrategySource, StrategyVersionPublic, StrategyVersionsPublic
from tradefleet.services import strategy_uploads as service

router = APIRouter(prefix="/strategies/uploads", tags=["strategy uploads"])


@router.post("", response_model=StrategyVersionPublic, status_code=status.HTTP_202_ACCEPTED,
             responses={403: {"description": "not an author"}, 409: {"description": "same file, or too many"},
                        413: {"description": "file too large"}})
async def upload_strategy(session: SessionDep, user: CurrentUser,
                          file: UploadFile = File(..., description="the strategy's .py file (UTF-8)")
                          ) -> StrategyVersionPublic:
    """Upload a strategy file (multipart, field ``file``): stored as a version in ``validating``; a worker
    validates it in the sandbox (``invalid`` with the report, or ``pending_review`` until an admin
    approves or rejects it). Follow it with ``GET /strategies/uploads/{id}``."""
    service.ensure_can_upload(user)
    limit = get_settings().STRATEGY_UPLOAD_MAX_BYTES
    data = await file.read(limit + 1)  # one byte more than allowed is enough to refuse it
    version = service.upload_version(session=session, author=user, filename=file.filename, data=data)
    return StrategyVersionPublic.model_validate(version)


@router.get("", response_model=StrategyVersionsPublic)
def list_uploads(session: SessionDep, user: CurrentUser, limit: int = Query(100, ge=1, le=500),
                 offset: int = Offset) -> StrategyVersionsPublic:
    """The caller's own uploaded versions, newest first, with their status and validation report."""
    rows, count = service.list_own_versions(session=session, author=user, limit=limit, offset=offset)
    return StrategyVersionsPublic(data=[StrategyVersionPublic.model_validate(r) for r in rows], count=count)


@router.get("/{version_id}", response_model=StrategyVersionPublic)
def get_upload(version_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> StrategyVersionPublic:
    """One of the caller's uploaded versions: status, manifest, validation report, review reason."""
    return StrategyVersionPublic.model_validate(
        service.get_own_version_or_404(session=session, author=user, version_id=version_id))


@router.get("/{version_id}/source", response_model=StrategySource)
def get_upload_source(version_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> StrategySource:
    """The file of a version: for its author (and admins) only; anyone else gets a 404."""
    version = service.get_source_or_404(session=session, user=user, version_id=version_id)
    return StrategySource(filename=version.filename, source=version.source)
