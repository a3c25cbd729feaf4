"""Fixtures of the live-trading tests: accounts on the exchange simulator's private side
with their keys stored in the vault, live runs of the test strategy ``flip`` (tests/live/strategies),
and a tick that drives the real scheduler and engine against the simulator's clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.common import vault_settings
from support.live import provision, store_account
from tradefleet.models import ExchangeAccount
from tradefleet.security import vault

STRATEGIES = Path(__file__).parent / "strategies"


@dataclass
class SimAccount:
    """An account on the simulator and its ExchangeAccount row."""

    api_key: str
    secret: str
    row: ExchangeAccount


@pytest.fixture
def live_env(market_catalog, settings_env, tmp_path) -> Any:
    """The simulator with its catalog loaded, the test strategies, fast backoff, decryption unlocked
    (as in a worker), and no cached brokers."""
    from tradefleet.execution.live import forget_brokers

    settings_env(STRATEGIES_DIR=str(STRATEGIES), LIVE_BACKOFF_S="0.01",
                 **vault_settings(),
                 EXCHANGE_API_URLS=f'{{"binance": "{market_catalog.base_url}"}}')
    forget_brokers()
    with vault.unlocked():
        yield market_catalog
    forget_brokers()
    httpx.delete(f"{market_catalog.base_url}/sim/faults")


@pytest.fixture
def sim_account(live_env, session) -> Callable[..., SimAccount]:
    """``sim_account(owner, balances={"USDT": 1000}, secret=None) -> SimAccount``; ``secret``
    overrides the stored secret (a wrong one makes an invalid key)."""

    def make(owner, balances: dict[str, Any] | None = None, *, stored_secret: str | None = None) -> SimAccount:
        api_key, secret = provision(live_env.base_url, balances or {"USDT": "1000"})
        row = store_account(session, owner.id, api_key, stored_secret or secret)
        return SimAccount(api_key, secret, row)

    return make


@pytest.fixture
def verified_user(make_user):
    def make(**kw):
        user, _ = make_user(is_verified=True, **kw)
        return user
    return make
