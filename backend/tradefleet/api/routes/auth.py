"""Sign-up and login. Public: these are how a client gets a token in the first place."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm

from tradefleet.api.deps import SessionDep
from tradefleet.models import Token, UserCreate, UserPublic
from tradefleet.security.tokens import create_access_token
from tradefleet.services import users as users_service

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/register", response_model=UserPublic, status_code=status.HTTP_201_CREATED,
             responses={409: {"description": "email already registered"}})
def register(session: SessionDep, user_in: UserCreate) -> UserPublic:
    """Create a trader account. 409 when the e-mail (case-insensitive) is taken; 422 for a password
    outside 10..128 characters or an invalid e-mail."""
    user = users_service.create_user(session=session, user_in=user_in)
    return UserPublic.model_validate(user)


@router.post("/login", response_model=Token,
             responses={401: {"description": "incorrect email or password"},
                        403: {"description": "account disabled"}})
def login(session: SessionDep, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token:
    """OAuth2 password flow: form fields ``username`` (the e-mail) and ``password``."""
    user = users_service.authenticate(session=session, email=form.username, password=form.password)
    if user is None:
        # One message for an unknown e-mail and a wrong password: the reply must not reveal which
        # e-mails are registered.
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="incorrect email or password",
                            headers={"WWW-Authenticate": "Bearer"})
    if not user.is_active:
        # Only said after the password proved who is asking.
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="account disabled")
    return Token(access_token=create_access_token(user.id))
