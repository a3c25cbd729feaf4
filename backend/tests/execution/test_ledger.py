"""One ledger (``tradefleet.execution.ledger``): paper fills, live fills, the paper kill and the backtest's trade
list compute a round trip the same way, and the way is right: once everything bought is sold, the realised PnL
is exactly the change in cash (every fee included).

Property tests (hypothesis) drive random fill sequences through the paper account and through the live
order manager's fill path, and compare both with the cash flow and with each other; the backtest's column-wise
trade list is compared bit for bit; the kill runs on the real database."""

from __future__ import annotations

import math
import uuid

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, select

from tradefleet.backtest.results import trade_dicts
from tradefleet.execution.account import PendingOrder, CandleAccount
from tradefleet.execution.ledger import RoundTrip, round_trip_pnl, round_trip_pnl_pct, unrealised_pnl
from tradefleet.execution.live_rows import MarketInfo, apply_fill
from tradefleet.execution.paper import MarketRules, Wallet
from tradefleet.models import (ExchangeMarket, LiveEvent, Order, OrderSide, OrderStatus, OrderType, Run, RunMode, RunStatus,
                               Trade, TradeStatus)

STAKE = 10_000.0
prices = st.floats(min_value=0.5, max_value=90_000, allow_nan=False, allow_infinity=False)
takers = st.sampled_from([0.0, 0.0004, 0.001, 0.002])
# A round trip: one to three buys (share of the cash each spends), then zero to two partial sells (share of the
# position), then the sell of the rest.
round_trips = st.tuples(
    st.lists(st.tuples(prices, st.floats(min_value=0.05, max_value=0.9)), min_size=1, max_size=3),
    st.lists(st.tuples(prices, st.floats(min_value=0.05, max_value=0.9)), min_size=0, max_size=2),
    prices,
)
PROPERTY = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def _paper(taker: float, trip) -> tuple[CandleAccount, list]:
    """The round trip through a paper account; returns it and the fills as (side, price, amount, fee)."""
    buys, partial_sells, last_price = trip
    account = CandleAccount(MarketRules(taker=taker), wallet=Wallet(cash=STAKE))
    t = 0
    for price, share in buys:
        account.fill_now(PendingOrder("buy", "enter_long", t, quote_amount=account.wallet.cash * share), price, t)
        t += 60_000
    for price, share in partial_sells:
        account.fill_now(PendingOrder("sell", "sell", t, amount=account.wallet.position_amount * share), price, t)
        t += 60_000
    account.fill_now(PendingOrder("sell", "exit_long", t), last_price, t)
    fills = [(e.fill.side, e.fill.price, e.fill.amount, e.fill.fee) for e in account.take_events().fills]
    return account, fills


def _live(fills: list) -> tuple[Run, Trade | None, list[Trade]]:
    """The same fills as exchange trades (fee in quote) through the live order manager's fill path."""
    run = Run(owner_id=uuid.uuid4(), strategy="x", exchange="binance", symbol="BTC/USDT", timeframe="1m",
              mode=RunMode.live, stake=STAKE, cash=STAKE)
    info = MarketInfo("BTC", "USDT", 0.0, None)
    session = Session()  # unbound: apply_fill only adds rows
    trade = None
    closed: list[Trade] = []
    for k, (side, price, amount, fee) in enumerate(fills):
        order = Order(run_id=run.id, client_order_id=f"c{k}", symbol=run.symbol, side=OrderSide(side),
                      type=OrderType.market, amount=amount, status=OrderStatus.open,
                      reason="exit_long" if side == "sell" else "enter_long", signal_candle_ms=k)
        exchange_trade = {"id": str(k), "price": price, "amount": amount, "cost": price * amount,
                          "timestamp": k * 60_000, "fee": {"cost": fee, "currency": "USDT"}}
        before = trade
        trade = apply_fill(session, run, order, trade, exchange_trade, info)
        if before is not None and trade is None:
            closed.append(before)
    return run, trade, closed


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@given(takers, round_trips)
@PROPERTY
def test_paper_and_live_agree_and_equal_the_cash_flow(taker, trip):
    account, fills = _paper(taker, trip)
    closed = [f for f in fills]
    assert account.position is None and account.wallet.position_amount == 0
    realised = account.wallet.realised_pnl
    assert math.isclose(realised, account.wallet.cash - STAKE, rel_tol=1e-9, abs_tol=1e-6)

    run, still_open, live_closed = _live(closed)
    assert still_open is None and len(live_closed) == 1
    trade = live_closed[0]
    assert trade.status == TradeStatus.closed
    assert math.isclose(trade.pnl, realised, rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(run.realised_pnl, run.cash - STAKE, rel_tol=1e-9, abs_tol=1e-6)
    bought_cost = sum(p * a for side, p, a, _ in fills if side == "buy")
    entry_fees = sum(f for side, _, _, f in fills if side == "buy")
    assert math.isclose(trade.pnl_pct, trade.pnl / (bought_cost + entry_fees) * 100, rel_tol=1e-9, abs_tol=1e-9)


@given(takers, prices, prices, st.floats(min_value=0.05, max_value=1.0))
@PROPERTY
def test_the_backtest_trade_list_is_the_paper_trade_bit_for_bit(taker, entry, exit_, share):
    account = CandleAccount(MarketRules(taker=taker), wallet=Wallet(cash=STAKE))
    account.fill_now(PendingOrder("buy", "enter_long", 0, quote_amount=STAKE * share), entry, 0)
    account.fill_now(PendingOrder("sell", "exit_long", 60_000), exit_, 60_000)
    closed = account.take_events().closed
    assert len(closed) == 1
    p = closed[0].round_trip
    rows = trade_dicts(np.array([0, 60_000], dtype="int64"),
                        [(0, p.entry_price, p.bought, p.entry_fee, 1, p.exit_price, p.exit_fee, "exit_long")])
    assert rows[0]["pnl"] == closed[0].pnl
    assert rows[0]["pnl_pct"] == closed[0].pnl_pct


def test_formulas_are_the_textbook_ones_and_dust_counts_as_lost():
    # 2 BTC bought at 100 (fee 0.2), sold at 110 (fee 0.22): 2 × 10 − 0.42.
    assert round_trip_pnl(2.0, 100.0, 110.0, 0.2, 0.22) == pytest.approx(19.58)
    assert round_trip_pnl_pct(19.58, 2.0, 100.0, 0.2) == pytest.approx(19.58 / 200.2 * 100)
    # 0.001 BTC never sold (below the market's step): its cost is lost, as on the exchange.
    assert round_trip_pnl(2.0, 100.0, 110.0, 0.2, 0.22, sold=1.999) == pytest.approx(19.58 - 0.001 * 110)
    # Open: 2 held at 105 → 2 × 5 − 0.2 entry fee; after selling 1 at 110 (fee 0.11), 1 held at 90.
    assert unrealised_pnl(2.0, 105.0, bought=2.0, entry_price=100.0, entry_fee=0.2) == pytest.approx(9.8)
    assert unrealised_pnl(1.0, 90.0, bought=2.0, entry_price=100.0, entry_fee=0.2, sold=1.0, exit_price=110.0,
                          exit_fee=0.11) == pytest.approx(90 + 110 - 200 - 0.31)
    trip = RoundTrip.open(0, price=100.0, amount=1.0, fee=0.1)
    trip.add_buy(price=120.0, amount=1.0, fee=0.12)
    assert trip.entry_price == pytest.approx(110.0) and trip.bought == 2.0 and trip.high_water == 120.0


# --------------------------------------------------------------------------------- the paper kill, stored

@pytest.mark.parametrize("partial", [False, True])
def test_a_paper_kill_sells_through_the_account_and_leaves_no_open_trade(session, make_user, partial):
    from tradefleet.services.runs import kill_run_row

    owner, _ = make_user()
    session.add(ExchangeMarket(exchange="binance", symbol="BTC/USDT", base="BTC", quote="USDT", active=True,
                               taker=0.001, maker=0.001, amount_step=0.00001, timeframes=["1m"]))
    run = Run(owner_id=owner.id, strategy="sma_cross", exchange="binance", symbol="BTC/USDT", timeframe="1m",
              mode=RunMode.paper, stake=STAKE, cash=STAKE, status=RunStatus.running)
    session.add(run)
    session.commit()
    # The run's account as the engine leaves it: a buy at 100, maybe a partial sell at 104, last price 95.
    account = CandleAccount(MarketRules(taker=0.001, amount_step=0.00001), wallet=Wallet(cash=STAKE))
    account.fill_now(PendingOrder("buy", "enter_long", 0, quote_amount=5_000.0), 100.0, 0)
    if partial:
        account.fill_now(PendingOrder("sell", "sell", 60_000, amount=account.wallet.position_amount / 2), 104.0, 60_000)
    trade = account.position.new_trade(run.id)
    account.position.store()
    session.add(trade)
    wallet = account.wallet
    run.cash, run.position_amount, run.realised_pnl, run.fees_paid = (wallet.cash, wallet.position_amount,
                                                                      wallet.realised_pnl, wallet.fees_paid)
    run.last_price = 95.0
    session.add(run)
    session.commit()

    kill_run_row(session=session, run=run, by="owner", actor=owner)

    session.expire_all()
    trades = session.exec(select(Trade).where(Trade.run_id == run.id)).all()
    assert [t.status for t in trades] == [TradeStatus.closed]
    killed = trades[0]
    assert killed.exit_reason == "kill"
    stored = session.get(Run, run.id)
    assert stored.position_amount == 0 and stored.status == RunStatus.stopped
    # Everything sold: the trade's PnL is the change in cash, and the run's realised PnL is that PnL.
    assert killed.pnl == pytest.approx(stored.cash - STAKE, rel=1e-9)
    assert stored.realised_pnl == pytest.approx(killed.pnl, rel=1e-9)
    kill_orders = session.exec(select(Order).where(Order.run_id == run.id, Order.reason == "kill")).all()
    assert len(kill_orders) == 1 and kill_orders[0].status == OrderStatus.filled
    assert kill_orders[0].client_order_id[-2] == "k"
    # The owner's browser hears of every row the kill wrote, in the order of a fill on a tick.
    published = session.exec(select(LiveEvent).where(LiveEvent.user_id == owner.id).order_by(LiveEvent.id)).all()
    assert [e.kind for e in published] == ["order", "fill", "trade", "log", "status"]
    by_kind = {e.kind: e.data for e in published}
    assert by_kind["order"]["order"]["id"] == str(kill_orders[0].id)
    assert by_kind["order"]["order"]["status"] == "filled"
    assert by_kind["fill"]["fill"]["order_id"] == str(kill_orders[0].id)
    assert by_kind["trade"]["trade"]["id"] == killed.id and by_kind["trade"]["trade"]["status"] == "closed"
    assert by_kind["status"] == {"run_id": str(run.id), "status": "stopped", "status_reason": "killed by owner"}
