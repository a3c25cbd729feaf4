"""Users: the ``User`` table and its API schemas."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from pydantic import EmailStr
from sqlalchemy import Column, String
from sqlmodel import Field, SQLModel

from tradefleet.models._types import enum_column, dt_column, utcnow


class Role(str, enum.Enum):
    """What a user may do: traders run strategies, authors also publish them, admins run the platform."""

    trader = "trader"
    author = "author"
    admin = "admin"


class UserBase(SQLModel):
    email: EmailStr = Field(max_length=255)


class UserCreate(UserBase):
    """Sign-up body. The password exists only on this write schema."""

    password: str = Field(min_length=10, max_length=128)


class User(SQLModel, table=True):
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    email: str = Field(sa_column=Column(String(255), unique=True, index=True, nullable=False))
    hashed_password: str = Field(max_length=255)
    role: Role = Field(default=Role.trader, sa_column=enum_column(Role))
    is_active: bool = True
    is_verified: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_column=dt_column())


class UserPublic(UserBase):
    id: uuid.UUID
    role: Role
    is_active: bool
    is_verified: bool
    created_at: datetime


class Token(SQLModel):
    access_token: str
    token_type: str = "bearer"
