"""The signed-in user's own account: profile, password, two-factor."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field

from tradefleet.api.deps import CurrentUser, SessionDep
from tradefleet.models import UserMeUpdate, UserPublic
from tradefleet.services import auth as auth_service
from tradefleet.services import users as users_service

router = APIRouter(prefix="/users", tags=["users"])


class PasswordChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: Annotated[str, Field(min_length=1, max_length=128)]
    new_password: Annotated[str, Field(min_length=10, max_length=128)]


class TotpSetup(BaseModel):
    secret: str = Field(description="base32 secret, for typing into an authenticator app")
    otpauth_uri: str
    qr_svg: str = Field(description="the otpauth URI as a QR code, an SVG document")


CurrentPassword = Annotated[str, Field(min_length=1, max_length=128, description="the account's current password")]
Code = Annotated[str, Field(min_length=6, max_length=32, description="TOTP code (or, to disable, a recovery code)")]


class PasswordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: CurrentPassword


class TotpEnableIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: CurrentPassword
    code: Code


class RecoveryCodes(BaseModel):
    recovery_codes: list[str] = Field(description="shown once; each works once instead of a TOTP code")


class TotpDisableIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: CurrentPassword
    code: Code


@router.get("/me", response_model=UserPublic)
def read_me(current_user: CurrentUser) -> UserPublic:
    """The account the bearer token belongs to."""
    return UserPublic.model_validate(current_user)


@router.patch("/me", response_model=UserPublic)
def update_me(session: SessionDep, current_user: CurrentUser, body: UserMeUpdate) -> UserPublic:
    """Change the public name shown as the author of the strategies you publish (``null``: the e-mail's
    local part)."""
    return UserPublic.model_validate(users_service.update_profile(session=session, user=current_user,
                                                                 display_name=body.display_name))


@router.post("/me/password", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
             responses={400: {"description": "current_password incorrect"}})
def change_password(session: SessionDep, user: CurrentUser, body: PasswordChangeIn) -> Response:
    """Change the password. Every token of the account, this one included, stops working: sign in again."""
    auth_service.change_password(session=session, user=user, current_password=body.current_password,
                                 new_password=body.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/me/2fa/setup", response_model=TotpSetup,
             responses={400: {"description": "password incorrect"}, 409: {"description": "2FA already enabled"}})
def totp_setup(session: SessionDep, user: CurrentUser, body: PasswordIn) -> TotpSetup:
    """Start 2FA enrolment with the current ``password``: scan the QR code (or type the secret), then
    confirm with ``/me/2fa/enable``. The owner is e-mailed. 422 naming ``body`` without a body."""
    return TotpSetup(**auth_service.setup_totp(session=session, user=user, password=body.password))


@router.post("/me/2fa/enable", response_model=RecoveryCodes,
             responses={400: {"description": "password or code incorrect"},
                        409: {"description": "no setup, or already on"}})
def totp_enable(session: SessionDep, user: CurrentUser, body: TotpEnableIn) -> RecoveryCodes:
    """Turn 2FA on with the current ``password`` and a current code from the app; returns the recovery
    codes (shown only now). The owner is e-mailed."""
    return RecoveryCodes(recovery_codes=auth_service.enable_totp(session=session, user=user,
                                                                 password=body.password, code=body.code))


@router.post("/me/2fa/disable", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
             responses={400: {"description": "password or code incorrect"}, 409: {"description": "2FA is off"}})
def totp_disable(session: SessionDep, user: CurrentUser, body: TotpDisableIn) -> Response:
    """Turn 2FA off: needs the password and a TOTP or recovery code. The owner is e-mailed."""
    auth_service.disable_totp(session=session, user=user, password=body.password, code=body.code)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
