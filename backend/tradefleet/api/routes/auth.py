"""Sign-up, sign-in, tokens, e-mail verification and password reset.

Public router (see ``PUBLIC_ROUTERS`` in ``api/main.py``): these routes are how a client gets a token
in the first place, or gets back into an account it lost. The one route that needs a signed-in user
(``resend-verification``) says so with a ``CurrentUser`` argument.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, ConfigDict, Field

from tradefleet.api.deps import CurrentUser, SessionDep
from tradefleet.models import MfaRequired, Token, UserCreate, UserPublic
from tradefleet.security.ratelimit import client_ip
from tradefleet.models.input_types import Label, SafeEmail
from tradefleet.services import auth as auth_service

router = APIRouter(prefix="/auth", tags=["auth"])

NewPassword = Annotated[str, Field(min_length=10, max_length=128)]
TokenStr = Annotated[Label, Field(min_length=1, max_length=512)]


class Body(BaseModel):
    """A request body: an unknown field is a 422."""

    model_config = ConfigDict(extra="forbid")


class TokenIn(Body):
    token: TokenStr


class RefreshIn(Body):
    refresh_token: TokenStr


class Login2faIn(Body):
    mfa_token: TokenStr
    code: Annotated[str, Field(min_length=6, max_length=32, description="TOTP code or a recovery code")]


class ResetRequestIn(Body):
    email: SafeEmail = Field(max_length=254)


class ResetConfirmIn(Body):
    token: TokenStr
    new_password: NewPassword


class Accepted(BaseModel):
    detail: str


@router.post("/register", response_model=UserPublic, status_code=status.HTTP_201_CREATED,
             responses={409: {"description": "email already registered"}})
def register(session: SessionDep, user_in: UserCreate) -> UserPublic:
    """Create a trader account and mail a verification link (``{FRONTEND_BASE_URL}/verify.html?token=``).
    409 when the e-mail (case-insensitive) is taken; 422 for a password outside 10..128 characters or an
    invalid e-mail."""
    return UserPublic.model_validate(auth_service.register(session=session, user_in=user_in))


@router.post("/verify-email", response_model=UserPublic,
             responses={400: {"description": "token invalid, expired or already used"}})
def verify_email(session: SessionDep, body: TokenIn) -> UserPublic:
    """Confirm the e-mail with the token of the link; the token works once."""
    return UserPublic.model_validate(auth_service.verify_email(session=session, token=body.token))


@router.post("/resend-verification", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted,
             responses={409: {"description": "email already verified"}})
def resend_verification(session: SessionDep, user: CurrentUser) -> Accepted:
    """Mail a new verification link to the signed-in user (bearer token required)."""
    auth_service.resend_verification(session=session, user=user)
    return Accepted(detail="verification e-mail sent")


@router.post("/login", response_model=Token | MfaRequired,
             responses={401: {"description": "incorrect email or password"},
                        403: {"description": "account disabled"}})
def login(request: Request, session: SessionDep,
          form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token | MfaRequired:
    """OAuth2 password flow: form fields ``username`` (the e-mail) and ``password``.

    → ``{access_token, refresh_token, token_type: "bearer", expires_in}`` (seconds), or, when the account
    has 2FA, ``{mfa_required: true, mfa_token}`` to finish at ``POST /auth/login/2fa``. 429 with
    ``Retry-After`` while failed attempts lock the account for this client IP or account-wide (a password
    reset lifts both).
    """
    try:
        return auth_service.login(session=session, email=form.username, password=form.password,
                                  client_ip=client_ip(request))
    except auth_service.Unauthorized as exc:
        # One message for an unknown e-mail and a wrong password: the reply must not reveal which
        # e-mails are registered.
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=exc.detail,
                            headers={"WWW-Authenticate": "Bearer"}) from None


@router.post("/login/2fa", response_model=Token,
             responses={400: {"description": "code invalid or already used"},
                        401: {"description": "mfa_token invalid or expired"}})
def login_2fa(request: Request, session: SessionDep, body: Login2faIn) -> Token:
    """Second step of a 2FA sign-in: the ``mfa_token`` of ``/auth/login`` and a TOTP or recovery code."""
    _user, token = auth_service.login_2fa(session=session, mfa_token=body.mfa_token, code=body.code,
                                          client_ip=client_ip(request))
    return token


@router.post("/refresh", response_model=Token,
             responses={401: {"description": "refresh token invalid, expired, revoked or reused"}})
def refresh(session: SessionDep, body: RefreshIn) -> Token:
    """A new token pair for a refresh token, which is used up (rotation). Presenting a used refresh token
    again revokes every token of that sign-in (401)."""
    return auth_service.refresh(session=session, refresh_token=body.refresh_token)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def logout(session: SessionDep, body: RefreshIn) -> Response:
    """Revoke the sign-in of this refresh token (and every token rotated from it). 204 also for an
    unknown token: logging out twice is not an error."""
    auth_service.logout(session=session, refresh_token=body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/password-reset/request", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted)
def password_reset_request(body: ResetRequestIn) -> Accepted:
    """Mail a reset link (``{FRONTEND_BASE_URL}/reset.html?token=``) if the e-mail has an account.

    Always 202 with the same body: the reply must not tell whether an account exists (see
    :func:`tradefleet.services.auth.request_password_reset`).
    """
    auth_service.request_password_reset(email=str(body.email))
    return Accepted(detail="if an account has this e-mail, a reset link is on its way")


@router.post("/password-reset/confirm", response_model=UserPublic,
             responses={400: {"description": "token invalid, expired or already used"}})
def password_reset_confirm(session: SessionDep, body: ResetConfirmIn) -> UserPublic:
    """Set a new password with the token of the reset link (works once); every session is signed out and
    every sign-in lock of the account is lifted. Never refused by the lockout."""
    user = auth_service.confirm_password_reset(session=session, token=body.token, new_password=body.new_password)
    return UserPublic.model_validate(user)
