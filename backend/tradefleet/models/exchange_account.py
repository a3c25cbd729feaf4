"""Exchange accounts: a trader's API keys for one exchange, sealed at rest to the vault's public key.

The schema family follows the rest of ``models/``: ``ExchangeAccountBase`` (what is shown and
stored in clear), ``ExchangeAccountCreate`` / ``ExchangeAccountUpdate`` (the only schemas that carry
secrets, as ``SecretStr`` so they never print), ``ExchangeAccount`` (the table, ciphertext only) and
``ExchangeAccountPublic`` / ``ExchangeAccountsPublic`` (what the API returns: a masked fingerprint,
never a key).

Every credential column (even the API key: on its own it identifies the account) holds a sealed token
of :mod:`tradefleet.security.vault`, bound to the row's id and the column's name, so a ciphertext
copied into another row or column does not decrypt. Only the worker holds the private key and
decrypts, at the moment of use (``SECRETS.md``).
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from pydantic import ConfigDict, SecretStr, field_validator
from sqlalchemy import Column, ForeignKey, Index, Text
from sqlalchemy import Uuid as SAUuid
from sqlmodel import Field, SQLModel

from tradefleet.models._types import dt_column, enum_column, utcnow
from tradefleet.models.input_types import Label, StrictBool

CREDENTIAL_FIELDS = ("api_key", "secret", "password", "uid")
"""The credential fields, as named on the write schemas; column ``<name>_enc`` holds each one."""


class KeyCheckStatus(str, enum.Enum):
    """Result of the worker's key check: ``pending`` until it ran; ``valid`` (the exchange accepted
    the keys and they cannot withdraw); ``invalid`` (rejected by the exchange, or allowed to withdraw);
    ``error`` (the check could not be done: network, exchange down; see the message)."""

    pending = "pending"
    valid = "valid"
    invalid = "invalid"
    error = "error"


class ExchangeAccountBase(SQLModel):
    exchange: Label = Field(min_length=1, max_length=50, description="ccxt exchange id, e.g. binance")
    label: Label = Field(min_length=1, max_length=100, description="the trader's name for these keys")
    sandbox: StrictBool = Field(default=False, description="the exchange's sandbox / testnet (ccxt's set_sandbox_mode)")

    @field_validator("label", mode="before")
    @classmethod
    def _strip_label(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value


def _secret(description: str, *, required: bool) -> object:
    return Field(... if required else None, min_length=1, max_length=512, description=description)


class ExchangeAccountCreate(ExchangeAccountBase):
    """Body of ``POST /api/v1/exchange-accounts``. The only place (with the update) where keys exist
    in clear; ``SecretStr`` masks them in every repr, log line and validation error."""

    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr = _secret("the exchange API key", required=True)
    secret: SecretStr = _secret("the exchange API secret", required=True)
    password: SecretStr | None = _secret("passphrase, for exchanges that need one (OKX, KuCoin...)", required=False)
    uid: SecretStr | None = _secret("user id, for exchanges that need one", required=False)


class ExchangeAccountUpdate(SQLModel):
    """Body of ``PATCH /api/v1/exchange-accounts/{id}``: every field optional. New keys replace the
    stored ones (and are checked again); the exchange of an account cannot change (add another)."""

    model_config = ConfigDict(extra="forbid")

    label: Label | None = Field(default=None, min_length=1, max_length=100)
    sandbox: StrictBool | None = None
    api_key: SecretStr | None = _secret("a new API key", required=False)
    secret: SecretStr | None = _secret("a new API secret", required=False)
    password: SecretStr | None = _secret("a new passphrase", required=False)
    uid: SecretStr | None = _secret("a new user id", required=False)

    @field_validator("label", mode="before")
    @classmethod
    def _strip_label(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value


class ExchangeAccount(SQLModel, table=True):
    """One set of keys. ``*_enc`` columns hold vault tokens (sealed boxes, bound to ``id`` and the
    column); ``fingerprint`` is for display only (first and last four characters of the API key);
    ``vault_key_id`` is the id of the public key every token of the row is sealed to (``NULL`` when
    they differ, or a token is of the symmetric vault: ``tradefleet keys status`` counts them)."""

    __tablename__ = "exchange_account"
    __table_args__ = (Index("ix_exchange_account_owner_created", "owner_id", "created_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = Field(
        sa_column=Column(SAUuid, ForeignKey("user.id", ondelete="CASCADE"), nullable=False)
    )
    exchange: str = Field(max_length=50)
    label: str = Field(max_length=100)
    sandbox: bool = False
    api_key_enc: str = Field(sa_column=Column(Text, nullable=False))
    secret_enc: str = Field(sa_column=Column(Text, nullable=False))
    password_enc: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    uid_enc: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    fingerprint: str = Field(max_length=32)
    vault_key_id: str | None = Field(default=None, max_length=32)
    check_status: KeyCheckStatus = Field(default=KeyCheckStatus.pending, sa_column=enum_column(KeyCheckStatus))
    check_message: str | None = Field(default=None, sa_column=Column(Text))
    checked_at: datetime | None = Field(default=None, sa_column=dt_column(nullable=True))
    # Incremented whenever the keys or the sandbox flag change: a key check records its result only
    # if the keys it checked are still the stored ones, and cached brokers are keyed by it.
    keys_version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow, sa_column=dt_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=dt_column())


class ExchangeAccountPublic(ExchangeAccountBase):
    """An account as the API shows it: never a key or a secret, only the masked ``fingerprint``."""

    id: uuid.UUID
    fingerprint: str
    check_status: KeyCheckStatus
    check_message: str | None
    checked_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ExchangeAccountsPublic(SQLModel):
    data: list[ExchangeAccountPublic]
    count: int
