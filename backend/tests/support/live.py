"""Helpers of the live-trading and chaos tests: accounts on the exchange simulator's
private side and their keys stored through the vault, as the API stores them; live runs of them, and a
tick that drives the real scheduler and engine against the simulator's clock."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import httpx
from sqlmodel import Session

from tradefleet.models import ExchangeAccount, Run, RunCreate
from tradefleet.models.exchange_account import KeyCheckStatus
from tradefleet.security import vault

MINUTE = 60_000


def provision(base_url: str, balances: dict[str, Any], permissions: dict[str, bool] | None = None) -> tuple[str, str]:
    """A new account on the simulator (``POST /sim/accounts``) -> ``(api_key, secret)``."""
    api_key, secret = f"key{secrets.token_hex(24)}", f"sec{secrets.token_hex(24)}"
    spec: dict[str, Any] = {"api_key": api_key, "secret": secret, "balances": balances}
    if permissions is not None:
        spec["permissions"] = permissions
    reply = httpx.post(f"{base_url}/sim/accounts", json=spec)
    assert reply.status_code == 201, reply.text
    return api_key, secret


def store_account(session: Session, owner_id: uuid.UUID, api_key: str, secret: str, *,
                  status: KeyCheckStatus = KeyCheckStatus.valid) -> ExchangeAccount:
    """An ExchangeAccount row with the keys encrypted by the vault and the key check recorded."""
    account = ExchangeAccount(owner_id=owner_id, exchange="binance", label="sim", sandbox=False,
                              api_key_enc="", secret_enc="", fingerprint=vault.fingerprint(api_key),
                              check_status=status)
    account.api_key_enc = vault.encrypt_field(api_key, account_id=account.id, field="api_key")
    account.secret_enc = vault.encrypt_field(secret, account_id=account.id, field="secret")
    session.add(account)
    session.commit()
    session.refresh(account)
    return account


def balances(base_url: str, api_key: str) -> dict[str, float]:
    """Free plus locked balance of every asset of a simulator account."""
    view = httpx.get(f"{base_url}/sim/accounts/{api_key}").json()
    return {asset: float(b["free"]) + float(b["locked"]) for asset, b in view["balances"].items()}


def exchange_orders(base_url: str, api_key: str) -> list[dict[str, Any]]:
    """Every order of a simulator account (Binance's query shape: clientOrderId, orderId, executedQty...)."""
    return httpx.get(f"{base_url}/sim/accounts/{api_key}").json()["orders"]


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
