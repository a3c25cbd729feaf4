"""Tables of sign-in state: refresh tokens (when kept in the database), single-use e-mail
tokens (verification, password reset) and 2FA recovery codes.

Every secret here is stored as its SHA-256 hex digest, never in clear: a copy of the database does not
give anyone a working token or code. (The secrets are 256-bit random tokens or 80-bit recovery codes,
so a fast hash is enough; salting and slow hashing matter for low-entropy passwords only.)
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Column, ForeignKey, Integer, String, Uuid
from sqlmodel import Field, SQLModel

from tradefleet.models._types import dt_column, enum_column, id_column, utcnow


class RefreshToken(SQLModel, table=True):
    """One refresh token of the database store. A token is used once (``used_at``): using it again
    revokes every token of its ``family_id`` (the chain of rotations from one login)."""

    __tablename__ = "refresh_token"

    token_hash: str = Field(sa_column=Column(String(64), primary_key=True))
    family_id: uuid.UUID = Field(sa_column=Column(Uuid(), nullable=False, index=True))
    user_id: uuid.UUID = Field(
        sa_column=Column(Uuid(), ForeignKey("user.id", ondelete="CASCADE"), nullable=False, index=True))
    token_version: int = Field(sa_column=Column(Integer(), nullable=False))
    expires_at: datetime = Field(sa_column=dt_column())
    used_at: datetime | None = Field(default=None, sa_column=dt_column(nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=dt_column(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=dt_column())


class TokenPurpose(str, enum.Enum):
    verify_email = "verify_email"
    password_reset = "password_reset"


class OneTimeToken(SQLModel, table=True):
    """A single-use, expiring token sent by e-mail (verification or password reset)."""

    __tablename__ = "one_time_token"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(
        sa_column=Column(Uuid(), ForeignKey("user.id", ondelete="CASCADE"), nullable=False, index=True))
    purpose: TokenPurpose = Field(sa_column=enum_column(TokenPurpose))
    token_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    expires_at: datetime = Field(sa_column=dt_column())
    used_at: datetime | None = Field(default=None, sa_column=dt_column(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=dt_column())


class RecoveryCode(SQLModel, table=True):
    """A 2FA recovery code (shown once at enrolment), usable once instead of a TOTP code."""

    __tablename__ = "recovery_code"

    id: int | None = Field(default=None, sa_column=id_column())
    user_id: uuid.UUID = Field(
        sa_column=Column(Uuid(), ForeignKey("user.id", ondelete="CASCADE"), nullable=False, index=True))
    code_hash: str = Field(sa_column=Column(String(64), nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=dt_column(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=dt_column())
