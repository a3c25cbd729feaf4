"""Live failures and the risk guard, against the exchange simulator, on SQLite and PostgreSQL:
refused keys and missing funds pause only their own run; network errors retry and lose nothing;
every risk decision is a run event; the exposure and daily-loss caps and the admin's halt stop new
orders; a kill cancels, sells at market and stops."""

from __future__ import annotations

import httpx
import pytest
from support.live import MINUTE, balances, exchange_orders, new_live_run, reload, tick
from sqlmodel import select

from tradefleet.execution.reconcile import kill, reconcile
from tradefleet.execution.risk import get_halt, set_halt
from tradefleet.models import Order, OrderSide, OrderStatus, Run, RunEvent, RunStatus, Trade, TradeStatus

T0 = 1704067200000


def events(session, run_id, kind=None):
    session.expire_all()
    statement = select(RunEvent).where(RunEvent.run_id == run_id)
    if kind:
        statement = statement.where(RunEvent.kind == kind)
    return session.exec(statement.order_by(RunEvent.id)).all()


def test_an_invalid_key_pauses_only_its_run(session, live_env, sim_account, verified_user):
    alice, bob = verified_user(), verified_user()
    good = sim_account(alice, {"USDT": "1000"})
    bad = sim_account(bob, {"USDT": "1000"}, stored_secret="not-the-secret")
    run_a = new_live_run(session, alice, good.row)
    run_b = new_live_run(session, bob, bad.row)
    for minute in range(3, 7):
        tick(live_env, T0 + minute * MINUTE + 1)
    run_a, run_b = reload(session, Run, run_a.id), reload(session, Run, run_b.id)
    assert run_b.status == RunStatus.paused
    assert "AuthenticationError" in run_b.status_reason
    assert [e.level.value for e in events(session, run_b.id, "paused")] == ["error"]
    assert exchange_orders(live_env.base_url, bad.api_key) == []
    # The other user's run went on trading.
    assert run_a.status == RunStatus.running
    assert len(exchange_orders(live_env.base_url, good.api_key)) == 4


def test_insufficient_funds_rejects_the_order_and_pauses_the_run(session, live_env, sim_account, verified_user):
    user = verified_user()
    account = sim_account(user, {"USDT": "50"})  # the exchange holds far less than the stake
    run = new_live_run(session, user, account.row, stake=1000.0)
    tick(live_env, T0 + 3 * MINUTE + 1)
    run = reload(session, Run, run.id)
    assert run.status == RunStatus.paused and "InsufficientFunds" in run.status_reason
    order = session.exec(select(Order).where(Order.run_id == run.id)).one()
    assert order.status == OrderStatus.rejected and "InsufficientFunds" in order.status_reason
    assert run.cash == 1000.0 and run.position_amount == 0.0


def test_rate_limits_and_timeouts_retry_with_backoff(session, live_env, sim_account, verified_user):
    user = verified_user()
    account = sim_account(user, {"USDT": "1000"})
    run = new_live_run(session, user, account.row)
    # Two rate-limit answers, then the send goes through (LIVE_SEND_ATTEMPTS=4).
    httpx.post(f"{live_env.base_url}/sim/faults", json={"kind": "rate_limit", "count": 2,
                                                        "paths": ["POST /api/v3/order"]}).raise_for_status()
    tick(live_env, T0 + 3 * MINUTE + 1)
    order = session.exec(select(Order).where(Order.run_id == run.id)).one()
    assert order.status == OrderStatus.filled
    assert len(exchange_orders(live_env.base_url, account.api_key)) == 1
    assert reload(session, Run, run.id).status == RunStatus.running


def test_every_risk_decision_is_an_event_and_the_exposure_cap_refuses(session, live_env, sim_account,
                                                                     verified_user, settings_env):
    settings_env(MAX_OPEN_EXPOSURE_QUOTE="300")  # flip buys with half of 1000: 500 > 300
    user = verified_user()
    account = sim_account(user, {"USDT": "1000"})
    run = new_live_run(session, user, account.row)
    tick(live_env, T0 + 3 * MINUTE + 1)
    refused = events(session, run.id, "risk_refused")
    assert len(refused) == 1 and "open exposure" in refused[0].message
    assert refused[0].data["rule"] == "exposure" and refused[0].data["max_exposure"] == 300
    order = session.exec(select(Order).where(Order.run_id == run.id)).one()
    assert order.status == OrderStatus.rejected and order.status_reason.startswith("risk guard")
    assert exchange_orders(live_env.base_url, account.api_key) == []
    settings_env(MAX_OPEN_EXPOSURE_QUOTE="600")
    tick(live_env, T0 + 5 * MINUTE + 1)  # the next even candle: 500 <= 600
    allowed = events(session, run.id, "risk_allowed")
    assert len(allowed) == 1 and allowed[0].data["exposure"] == pytest.approx(500.0)
    assert len(exchange_orders(live_env.base_url, account.api_key)) == 1


def test_daily_loss_cap_refuses_buys_but_not_sells(session, live_env, sim_account, verified_user, settings_env):
    user = verified_user()
    account = sim_account(user, {"USDT": "1000"})
    run = new_live_run(session, user, account.row)
    for minute in range(3, 5):  # one round trip: buy, sell (fees alone make it a loss)
        tick(live_env, T0 + minute * MINUTE + 1)
    trade = session.exec(select(Trade).where(Trade.run_id == run.id, Trade.status == TradeStatus.closed)).one()
    loss = -trade.pnl
    assert loss > 0
    settings_env(MAX_DAILY_LOSS_QUOTE=str(loss / 2))
    tick(live_env, T0 + 5 * MINUTE + 1)
    refused = events(session, run.id, "risk_refused")
    assert len(refused) == 1 and refused[0].data["rule"] == "daily_loss"
    assert refused[0].data["daily_loss"] == pytest.approx(loss)
    assert len(exchange_orders(live_env.base_url, account.api_key)) == 2


def test_global_halt_sends_nothing_and_records_halt_events(session, live_env, sim_account, verified_user,
                                                           make_user):
    user = verified_user()
    account = sim_account(user, {"USDT": "1000"})
    run = new_live_run(session, user, account.row)
    set_halt(session=session, halted=True, reason="exchange incident", by_user_id=None)
    assert get_halt(session).halted
    for minute in range(3, 6):
        tick(live_env, T0 + minute * MINUTE + 1)
    run = reload(session, Run, run.id)
    assert run.status == RunStatus.running and run.last_candle_ms == T0 + 4 * MINUTE
    halted = events(session, run.id, "halted")
    assert len(halted) == 3 and "exchange incident" in halted[0].message
    assert exchange_orders(live_env.base_url, account.api_key) == []
    assert session.exec(select(Order).where(Order.run_id == run.id)).all() == []
    set_halt(session=session, halted=False, reason=None, by_user_id=None)
    tick(live_env, T0 + 7 * MINUTE + 1)
    assert len(exchange_orders(live_env.base_url, account.api_key)) == 1


def test_kill_sells_the_position_at_market_and_stops(session, live_env, sim_account, verified_user, redis_url):
    from tradefleet.services.runs import kill_run_row

    user = verified_user()
    account = sim_account(user, {"USDT": "1000"})
    run = new_live_run(session, user, account.row)
    tick(live_env, T0 + 3 * MINUTE + 1)  # flip bought on minute 2
    run = reload(session, Run, run.id)
    assert run.position_amount > 0
    kill_run_row(session=session, run=run)  # what POST /runs/{id}/kill does (then enqueues the worker's part)
    live_env.clock.set(T0 + 3 * MINUTE + 30_000)
    result = kill(run.id, close=True)  # the worker's part (task live.kill_run)
    run = reload(session, Run, run.id)
    assert run.status == RunStatus.stopped and run.killed_at is not None
    held = balances(live_env.base_url, account.api_key)
    assert held.get("BTC", 0.0) == pytest.approx(run.position_amount, abs=1e-8)
    assert run.position_amount < 1e-5  # what is left is dust below one amount step
    assert held["USDT"] == pytest.approx(run.cash, abs=1e-6)
    close = session.exec(select(Order).where(Order.run_id == run.id, Order.reason == "kill")).one()
    assert close.side == OrderSide.sell and close.status == OrderStatus.filled
    assert result["close"] in ("filled", None)
    # Ticks no longer touch it, and a second kill sends nothing more.
    tick(live_env, T0 + 6 * MINUTE + 1)
    kill(run.id, close=True)
    assert len(exchange_orders(live_env.base_url, account.api_key)) == 2
    assert [e.kind for e in events(session, run.id)][-1] in ("fill", "killed", "risk_allowed")


def test_stop_cancels_a_resting_order_on_the_exchange(session, live_env, sim_account, verified_user, redis_url):
    """A live order still open on the exchange when its run stops is cancelled there by reconciliation."""
    from tradefleet.execution.order_ids import client_order_id
    from tradefleet.execution.orders import broker_for_run
    from tradefleet.models import OrderType
    from tradefleet.services.runs import stop_run

    user = verified_user()
    account = sim_account(user, {"USDT": "1000"})
    run = new_live_run(session, user, account.row)
    live_env.clock.set(T0 + 3 * MINUTE + 1)
    coid = client_order_id(run.id, T0 + 2 * MINUTE, "buy")
    order = Order(run_id=run.id, client_order_id=coid, symbol="BTC/USDT", side=OrderSide.buy, type=OrderType.limit,
                  amount=0.001, price=30_000.0, status=OrderStatus.submitted, reason="buy",
                  signal_candle_ms=T0 + 2 * MINUTE, attempts=1)
    session.add(order)
    session.commit()
    broker = broker_for_run(session, reload(session, Run, run.id))
    broker.create_order("BTC/USDT", "buy", 0.001, coid, type="limit", price=30_000.0)  # rests far below
    assert reconcile([run.id]) == {"open": 1}
    stop_run(session=session, owner=user, run_id=run.id)
    assert reconcile([run.id]) == {"cancelled": 1}
    remote = exchange_orders(live_env.base_url, account.api_key)
    assert [o["status"] for o in remote] == ["CANCELED"]
    assert balances(live_env.base_url, account.api_key)["USDT"] == pytest.approx(1000.0)
