"""Users: the ``User`` table and its API schemas."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from pydantic import ConfigDict, EmailStr
from sqlalchemy import BigInteger, Column, String, Text
from sqlmodel import Field, SQLModel

from tradefleet.models._types import enum_column, dt_column, utcnow
from tradefleet.models.input_types import Label, SafeEmail, StrictBool


class Role(str, enum.Enum):
    """What a user may do: traders run strategies, authors also publish them, admins run the platform."""

    trader = "trader"
    author = "author"
    admin = "admin"


class UserBase(SQLModel):
    email: EmailStr = Field(max_length=255)


class UserCreate(UserBase):
    """Sign-up body. The password exists only on this write schema. Unknown fields are a 422."""

    model_config = ConfigDict(extra="forbid")

    email: SafeEmail = Field(max_length=254)
    password: str = Field(min_length=10, max_length=128)


class User(SQLModel, table=True):
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    email: str = Field(sa_column=Column(String(255), unique=True, index=True, nullable=False))
    hashed_password: str = Field(max_length=255)
    role: Role = Field(default=Role.trader, sa_column=enum_column(Role))
    is_active: bool = True
    is_verified: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_column=dt_column())
    # --- tokens and two-factor --------------------------------------------------------
    token_version: int = 0
    """Carried by every access and refresh token as ``ver``; raised when the password changes or an
    admin disables the account, which invalidates every token issued before."""
    totp_secret: str | None = Field(default=None, sa_column=Column(Text(), nullable=True))
    """The TOTP secret, Fernet-encrypted (:mod:`tradefleet.security.crypto`); set by 2FA setup."""
    totp_enabled: bool = False
    totp_last_step: int | None = Field(default=None, sa_column=Column(BigInteger(), nullable=True))
    """The last TOTP time step (``unix_time // 30``) accepted: a code of that step or earlier is refused."""
    display_name: str | None = Field(default=None, sa_column=Column(String(80), nullable=True))
    """Shown as the author of the strategies this user published; default: the e-mail's local part."""


class UserPublic(UserBase):
    id: uuid.UUID
    role: Role
    is_active: bool
    is_verified: bool
    totp_enabled: bool = False
    display_name: str | None = None
    created_at: datetime


class UserMeUpdate(SQLModel):
    """``PATCH /users/me``: the public name shown on the strategies this user publishes (null: the
    e-mail's local part)."""

    model_config = ConfigDict(extra="forbid")

    display_name: Label | None = Field(default=None, min_length=1, max_length=80)


class UsersPublic(SQLModel):
    data: list[UserPublic]
    count: int


class UserAdminUpdate(SQLModel):
    """``PATCH /admin/users/{id}``: each field optional; absent fields are left as they are."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    is_active: StrictBool | None = None


class Token(SQLModel):
    """A token pair. ``expires_in`` is the access token's lifetime in seconds."""

    access_token: str
    refresh_token: str | None = None
    token_type: str = "bearer"
    expires_in: int | None = None


class MfaRequired(SQLModel):
    """Login reply when the account has 2FA: finish with ``POST /auth/login/2fa``."""

    mfa_required: bool = True
    mfa_token: str
