"""Column helpers shared by the tables."""

from __future__ import annotations

from datetime import UTC, datetime

import enum

from sqlalchemy import JSON, BigInteger, Column, DateTime, Enum, Integer
from sqlalchemy.types import TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB

JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def ms_column(*, nullable: bool = True, index: bool = False) -> Column:
    """A column of epoch milliseconds (UTC): candle times need 64 bits."""
    return Column(BigInteger, nullable=nullable, index=index)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every database: SQLite keeps no zone, so values are stored
    as UTC and given ``tzinfo=UTC`` again when loaded."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):  # noqa: ARG002
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime: pass a timezone-aware UTC datetime")
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value, dialect):  # noqa: ARG002
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def dt_column(*, nullable: bool = False, index: bool = False) -> Column:
    """A timezone-aware datetime column (UTC)."""
    return Column(UTCDateTime(), nullable=nullable, index=index)


# 64-bit ids for the tables that grow every tick; SQLite only autoincrements INTEGER PRIMARY KEY.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


def id_column() -> Column:
    """An autoincrementing 64-bit primary key."""
    return Column(BigIntId, primary_key=True, autoincrement=True)


def enum_column(enum_cls: type[enum.Enum], *, index: bool = False, length: int = 16,
                nullable: bool = False) -> Column:
    """A column of a str-valued enum, stored as its value in a VARCHAR(``length``) (no native enum type,
    so adding a member needs no migration); loads as the enum member."""
    return Column(
        Enum(enum_cls, native_enum=False, create_constraint=False, length=length,
             values_callable=lambda members: [m.value for m in members]),
        nullable=nullable, index=index,
    )
