"""User administration. Admins only: the router depends on ``get_current_admin`` (403 for others, and
for an admin without 2FA when ``REQUIRE_2FA_FOR_ADMINS`` is set)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query

from tradefleet.api.deps import CurrentAdmin, SessionDep, get_current_admin
from tradefleet.api.params import Offset
from tradefleet.models import Role, UserAdminUpdate, UserPublic, UsersPublic
from tradefleet.services import users as users_service

router = APIRouter(prefix="/admin/users", tags=["admin"], dependencies=[Depends(get_current_admin)])


@router.get("", response_model=UsersPublic)
def list_users(session: SessionDep, q: str | None = Query(None, max_length=255, description="part of the e-mail"),
               role: Role | None = None, limit: int = Query(100, ge=1, le=1000),
               offset: int = Offset) -> UsersPublic:
    """Users, oldest first, filtered by e-mail substring and role; ``count`` is the total of matches."""
    users, count = users_service.list_users(session=session, q=q, role=role, limit=limit, offset=offset)
    return UsersPublic(data=[UserPublic.model_validate(u) for u in users], count=count)


@router.patch("/{user_id}", response_model=UserPublic,
              responses={404: {"description": "no such user"},
                         409: {"description": "an admin cannot demote or disable themselves"}})
def update_user(user_id: uuid.UUID, body: UserAdminUpdate, session: SessionDep, admin: CurrentAdmin) -> UserPublic:
    """Change a user's role and/or disable (``is_active: false``) or re-enable them. Disabling signs the
    user out at once; both changes are audited."""
    user = users_service.admin_update_user(session=session, admin=admin, user_id=user_id, update=body)
    return UserPublic.model_validate(user)
