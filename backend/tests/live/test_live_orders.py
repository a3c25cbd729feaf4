"""Live runs through ccxt against the exchange simulator's private side, on SQLite and PostgreSQL:
orders are placed once with their deterministic client order id, fills and fees come from the
exchange's trades, the run's wallet mirrors the exchange's balances, and every crash window of the
order path (intent written but not sent, sent but not recorded, reply lost) ends with exactly one
order on the exchange and that order in the database."""

from __future__ import annotations

import httpx
import pytest
from support.live import MINUTE, balances, exchange_orders, new_live_run, reload, tick
from sqlmodel import select

from tradefleet.execution.order_ids import client_order_id
from tradefleet.execution.orders import process_order
from tradefleet.execution.reconcile import reconcile
from tradefleet.models import Fill, Order, OrderSide, OrderStatus, OrderType, Run, RunEvent, RunStatus, Trade, TradeStatus

T0 = 1704067200000


def assert_mirrors_exchange(base_url, api_key, run, *, other_usdt=0.0):
    """The run's cash and position equal the simulator account's balances (to the 8 decimals the
    exchange keeps)."""
    held = balances(base_url, api_key)
    assert held.get("BTC", 0.0) == pytest.approx(run.position_amount, abs=1e-8)
    assert held.get("USDT", 0.0) == pytest.approx(run.cash + other_usdt, abs=1e-6)


def assert_one_db_order_per_exchange_order(session, base_url, api_key, run_id):
    remote = exchange_orders(base_url, api_key)
    ids = [o["clientOrderId"] for o in remote]
    assert len(ids) == len(set(ids)), "an order was placed twice"
    session.expire_all()
    local = {o.client_order_id: o for o in session.exec(select(Order).where(Order.run_id == run_id))}
    assert set(ids) <= set(local), "an order on the exchange is missing from the database"
    for o in remote:
        mine = local[o["clientOrderId"]]
        assert mine.exchange_order_id == str(o["orderId"])
        assert mine.filled == pytest.approx(float(o["executedQty"]), abs=1e-12)
    return remote


def test_live_run_trades_on_the_exchange_and_mirrors_its_balances(session, live_env, sim_account, verified_user):
    user = verified_user()
    account = sim_account(user, {"USDT": "1000"})
    run = new_live_run(session, user, account.row, stake=1000.0)
    for minute in range(3, 9):
        tick(live_env, T0 + minute * MINUTE + 1)
    run = reload(session, Run, run.id)
    assert run.status == RunStatus.running, run.status_reason
    orders = session.exec(select(Order).where(Order.run_id == run.id).order_by(Order.created_at)).all()
    # Flip trades on every candle: buy on even minutes, sell on odd ones, each filled at once.
    assert len(orders) == 6
    assert [o.side for o in orders] == [OrderSide.sell if (o.signal_candle_ms // MINUTE) % 2 else OrderSide.buy
                                        for o in orders][:len(orders)]
    assert all(o.status == OrderStatus.filled for o in orders)
    for o in orders:
        assert o.client_order_id == client_order_id(run.id, o.signal_candle_ms, o.reason)
        assert o.attempts == 1
    remote = assert_one_db_order_per_exchange_order(session, live_env.base_url, account.api_key, run.id)
    assert len(remote) == 6
    fills = session.exec(select(Fill).where(Fill.run_id == run.id)).all()
    assert len(fills) == 6 and all(f.exchange_trade_id for f in fills)
    # Fees as the exchange charged them: in base on buys, in quote on sells (0.1 %).
    for f in fills:
        assert f.fee_currency == ("BTC" if f.side == OrderSide.buy else "USDT")
        base = f.amount if f.side == OrderSide.buy else f.cost
        assert f.fee == pytest.approx(base * 0.001, rel=1e-6, abs=1e-8)
    assert_mirrors_exchange(live_env.base_url, account.api_key, run)
    trades = session.exec(select(Trade).where(Trade.run_id == run.id, Trade.status == TradeStatus.closed)).all()
    assert len(trades) >= 2
    # Realised PnL: what the closed round trips gained or lost, as the exchange's balances say.
    assert run.realised_pnl == pytest.approx(sum(t.pnl for t in trades), rel=1e-9)
    if run.position_amount == 0:
        assert run.cash - run.stake == pytest.approx(run.realised_pnl, abs=1e-6)
    kinds = {e.kind for e in session.exec(select(RunEvent).where(RunEvent.run_id == run.id))}
    assert {"order_intent", "risk_allowed", "fill"} <= kinds


def _intent(session, run, *, status=OrderStatus.intent, minute=10, side=OrderSide.buy, quote=400.0):
    """An order row as the live tick writes it (the state a crash leaves behind)."""
    t = T0 + minute * MINUTE
    order = Order(run_id=run.id, client_order_id=client_order_id(run.id, t, "enter_long"), symbol=run.symbol,
                  side=side, type=OrderType.market, amount=0.0, quote_amount=quote, status=status,
                  reason="enter_long", signal_candle_ms=t, attempts=0 if status == OrderStatus.intent else 1)
    session.add(order)
    run.last_price = 42_000.0
    session.add(run)
    session.commit()
    session.refresh(order)
    return order


@pytest.mark.parametrize("status", [OrderStatus.intent, OrderStatus.submitted, OrderStatus.unknown])
def test_an_order_left_before_the_send_is_sent_exactly_once(session, live_env, sim_account, verified_user, status):
    """Crash after the intent (or the ``submitted`` mark) was committed and before the send:
    reconciliation looks it up (OrderNotFound), sends it once, and a second pass changes nothing."""
    user = verified_user()
    account = sim_account(user, {"USDT": "1000"})
    run = new_live_run(session, user, account.row)
    live_env.clock.set(T0 + 11 * MINUTE + 1)
    order = _intent(session, run, status=status)
    assert reconcile([run.id]) == {"filled": 1}
    assert reconcile([run.id]) == {}
    remote = assert_one_db_order_per_exchange_order(session, live_env.base_url, account.api_key, run.id)
    assert len(remote) == 1
    order = reload(session, Order, order.id)
    assert order.status == OrderStatus.filled and order.filled > 0
    assert_mirrors_exchange(live_env.base_url, account.api_key, reload(session, Run, run.id))


def test_an_order_sent_but_not_recorded_is_adopted_not_resent(session, live_env, sim_account, verified_user):
    """Crash after the exchange accepted the order and before the database recorded it (the row
    says ``submitted``): the look-up by client order id finds it and adopts its fills."""
    user = verified_user()
    account = sim_account(user, {"USDT": "1000"})
    run = new_live_run(session, user, account.row)
    live_env.clock.set(T0 + 11 * MINUTE + 1)
    order = _intent(session, run, status=OrderStatus.submitted)
    # The exchange got it (placed with the same client order id, as the lost send did).
    from tradefleet.execution.orders import broker_for_run

    broker = broker_for_run(session, reload(session, Run, run.id))
    placed = broker.create_order("BTC/USDT", "buy", 0.009, order.client_order_id)
    assert reconcile([run.id]) == {"filled": 1}
    remote = assert_one_db_order_per_exchange_order(session, live_env.base_url, account.api_key, run.id)
    assert len(remote) == 1 and str(remote[0]["orderId"]) == placed["id"]
    order = reload(session, Order, order.id)
    assert order.filled == pytest.approx(0.009) and order.attempts == 1  # adopted: never sent by us again
    assert_mirrors_exchange(live_env.base_url, account.api_key, reload(session, Run, run.id))


def test_reply_lost_after_the_exchange_applied_the_order(session, live_env, sim_account, verified_user):
    """The simulator places the order and loses the reply (fault ``when: after``): the send raises a
    network error, the order is looked up by its client order id, found and adopted; one order."""
    user = verified_user()
    account = sim_account(user, {"USDT": "1000"})
    run = new_live_run(session, user, account.row)
    live_env.clock.set(T0 + 11 * MINUTE + 1)
    order = _intent(session, run)
    httpx.post(f"{live_env.base_url}/sim/faults", json={"kind": "error", "when": "after", "count": 1,
                                                        "paths": ["POST /api/v3/order"]}).raise_for_status()
    outcome = process_order(order.id, fresh=True)
    assert outcome.status == OrderStatus.filled and outcome.sent
    remote = assert_one_db_order_per_exchange_order(session, live_env.base_url, account.api_key, run.id)
    assert len(remote) == 1
    assert reload(session, Order, order.id).attempts == 1


def test_exchange_down_delays_the_order_and_loses_nothing(session, live_env, sim_account, verified_user):
    user = verified_user()
    account = sim_account(user, {"USDT": "1000"})
    run = new_live_run(session, user, account.row)
    live_env.clock.set(T0 + 11 * MINUTE + 1)
    order = _intent(session, run)
    httpx.post(f"{live_env.base_url}/sim/faults", json={"kind": "down", "count": None}).raise_for_status()
    outcome = process_order(order.id, fresh=True)
    # Not sent, or sent with the outcome unknown: either way kept for reconciliation.
    assert outcome.status in (OrderStatus.intent, OrderStatus.unknown, OrderStatus.submitted)
    assert reconcile([run.id]).get("filled") is None
    assert reload(session, Run, run.id).status == RunStatus.running  # delayed, not paused
    httpx.delete(f"{live_env.base_url}/sim/faults").raise_for_status()
    assert reconcile([run.id]) == {"filled": 1}
    remote = assert_one_db_order_per_exchange_order(session, live_env.base_url, account.api_key, run.id)
    assert len(remote) == 1
