"""The review of uploaded strategy versions (admins only): the queue, one version with its source and
validation report, approve, reject with a reason. Every approval and rejection is in the audit log."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query

from tradefleet.api.deps import CurrentAdmin, SessionDep, get_current_admin
from tradefleet.api.params import Offset
from tradefleet.models import (
    ReviewReject,
    StrategyVersion,
    StrategyVersionAdmin,
    StrategyVersionDetail,
    StrategyVersionsAdmin,
    VersionStatus,
)
from tradefleet.services import strategy_uploads as service

router = APIRouter(prefix="/admin/strategy-versions", tags=["admin"], dependencies=[Depends(get_current_admin)])


def _admin(version: StrategyVersion, email: str | None) -> StrategyVersionAdmin:
    data = StrategyVersionAdmin.model_validate(version, update={"author_email": email}).model_dump()
    return StrategyVersionAdmin(**data)


@router.get("", response_model=StrategyVersionsAdmin)
def list_versions(session: SessionDep, status: VersionStatus | None = None,
                  limit: int = Query(100, ge=1, le=500), offset: int = Offset) -> StrategyVersionsAdmin:
    """Uploaded versions with their author's e-mail; ``?status=pending_review`` is the review queue
    (oldest first)."""
    rows, count = service.admin_list_versions(session=session, status=status, limit=limit, offset=offset)
    return StrategyVersionsAdmin(data=[_admin(v, e) for v, e in rows], count=count)


@router.get("/{version_id}", response_model=StrategyVersionDetail)
def get_version(version_id: uuid.UUID, session: SessionDep) -> StrategyVersionDetail:
    """One version (uploaded or bundled) with its source and validation report."""
    version, email = service.admin_get_version(session=session, version_id=version_id)
    return StrategyVersionDetail(**_admin(version, email).model_dump(), source=version.source)


@router.post("/{version_id}/approve", response_model=StrategyVersionAdmin,
             responses={409: {"description": "not pending review"}})
def approve_version(version_id: uuid.UUID, session: SessionDep, admin: CurrentAdmin) -> StrategyVersionAdmin:
    """Approve a version pending review: traders see it in the catalog."""
    version = service.approve_version(session=session, admin=admin, version_id=version_id)
    return _admin(*service.admin_get_version(session=session, version_id=version.id))


@router.post("/{version_id}/reject", response_model=StrategyVersionAdmin,
             responses={409: {"description": "not pending review"}})
def reject_version(version_id: uuid.UUID, body: ReviewReject, session: SessionDep,
                   admin: CurrentAdmin) -> StrategyVersionAdmin:
    """Reject a version pending review with a reason (1-1000 characters) that its author reads."""
    version = service.reject_version(session=session, admin=admin, version_id=version_id, reason=body.reason)
    return _admin(*service.admin_get_version(session=session, version_id=version.id))
