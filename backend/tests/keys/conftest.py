"""Fixtures of the exchange-key tests: accounts on the exchange simulator's private side,
and the broker seam of the key check (ids recorded instead of sent, with a check that the row was
committed first)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlmodel import Session

from tradefleet.db import get_engine
from tradefleet.models import ExchangeAccount
from tradefleet.security import vault
from tradefleet.services import exchange_accounts as service


@dataclass
class CheckQueue:
    """Account ids whose key check was enqueued, and whether each row was committed at that moment."""

    ids: list[uuid.UUID] = field(default_factory=list)
    committed: list[bool] = field(default_factory=list)


@pytest.fixture
def check_queue(monkeypatch: pytest.MonkeyPatch) -> CheckQueue:
    """Replace the broker of ``keys.check``: record each id, reading the row in another session (the
    API must have committed it before enqueueing)."""
    q = CheckQueue()

    def record(account_id: uuid.UUID) -> None:
        with Session(get_engine()) as s:
            q.committed.append(s.get(ExchangeAccount, account_id) is not None)
        q.ids.append(account_id)

    monkeypatch.setattr(service, "enqueue_key_check", record)
    return q


@pytest.fixture
def sim_account(exchange_sim) -> Callable[..., tuple[str, str]]:
    """``sim_account(permissions=None, balances=None, api_key=None, secret=None) -> (api_key, secret)``:
    an account provisioned on the session's exchange simulator (``POST /sim/accounts``)."""

    def make(permissions: dict[str, bool] | None = None, balances: dict[str, Any] | None = None,
             api_key: str | None = None, secret: str | None = None) -> tuple[str, str]:
        api_key = api_key or f"key{secrets.token_hex(28)}"
        secret = secret or f"sec{secrets.token_hex(28)}"
        spec: dict[str, Any] = {"api_key": api_key, "secret": secret,
                                "balances": balances or {"USDT": "10000", "BTC": "0.5"}}
        if permissions is not None:
            spec["permissions"] = permissions
        reply = httpx.post(f"{exchange_sim.base_url}/sim/accounts", json=spec)
        assert reply.status_code == 201, reply.text
        return api_key, secret

    yield make
    httpx.delete(f"{exchange_sim.base_url}/sim/faults")


@pytest.fixture
def unlocked_vault() -> Iterator[None]:
    """Decryption allowed in this (test) process, as in a worker; locked again afterwards."""
    with vault.unlocked():
        yield
