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
from sqlmodel import Session

from support.live import balances, exchange_orders, provision, store_account  # noqa: F401
from support.common import vault_settings
from tradefleet.models import ExchangeAccount, Run, RunCreate
from tradefleet.security import vault

STRATEGIES = Path(__file__).parent / "strategies"
MINUTE = 60_000


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


def new_live_run(session: Session, owner, account: ExchangeAccount, *, stake: float = 1000.0,
                 strategy: str = "flip", start: bool = True) -> Run:
    from tradefleet.services import runs as run_service

    run = run_service.create_run(session=session, owner=owner, run_in=RunCreate(
        strategy=strategy, params={}, exchange="binance", symbol="BTC/USDT", timeframe="1m", mode="live",
        stake=stake, exchange_account_id=account.id))
    if start:
        run = run_service.start_run(session=session, owner=owner, run_id=run.id)
    return run


def tick(sim, now_ms: int) -> list:
    """Set the simulator's clock, then one schedule pass and its evaluations, each followed by what the
    worker's ``live.process_order`` tasks do after a tick's commit: send the intents it wrote, resolve the
    live orders it found pending (as beat and a worker)."""
    from tradefleet.engine.evaluate import evaluate_market, send_live_intents
    from tradefleet.engine.schedule import plan
    from tradefleet.execution.orders import process_order

    sim.clock.set(now_ms)
    reports = []
    for d in plan():
        report = evaluate_market(d.market, d.candle_ms, d.run_ids, limit=d.limit)
        send_live_intents(report.live_order_ids)
        for order_id in report.live_pending_order_ids:
            process_order(order_id)
        reports.append(report)
    return reports


def reload(session: Session, model, key):
    session.expire_all()
    return session.get(model, key)


@pytest.fixture
def verified_user(make_user):
    def make(**kw):
        user, _ = make_user(is_verified=True, **kw)
        return user
    return make
