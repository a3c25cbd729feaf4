"""The signed-in user's own account."""

from __future__ import annotations

from fastapi import APIRouter

from tradefleet.api.deps import CurrentUser
from tradefleet.models import UserPublic

router = APIRouter(prefix="/users", tags=["users"])


@router.get("/me", response_model=UserPublic)
def read_me(current_user: CurrentUser) -> UserPublic:
    """The account the bearer token belongs to."""
    return UserPublic.model_validate(current_user)
