"""The fleet engine in-process against the simulator (frozen clock advanced by the test), on SQLite
and PostgreSQL: trades equal the test's own crossover computation, ticks are idempotent, a broken
strategy pauses only its run, and each market's candles are fetched once per candle."""

from __future__ import annotations

import shutil
import uuid

import ccxt
import pytest
from support.reference import expected_trades, load_candles
from sqlalchemy import func
from sqlmodel import Session, select

from tradefleet.config import REPO_ROOT
from tradefleet.engine.evaluate import evaluate_market
from tradefleet.execution.order_ids import client_order_id
from tradefleet.engine.schedule import plan
from tradefleet.models import (
    EquitySnapshot,
    Fill,
    Order,
    OrderStatus,
    Run,
    RunCreate,
    RunEvent,
    RunStatus,
    Trade,
    TradeStatus,
)
from tradefleet.services import runs as run_service

MINUTE = 60_000
T0 = 1704067200000


def tick(sim, now_ms: int) -> list:
    """Set the simulator's clock and run one schedule pass and its evaluations, as beat and the
    worker would (the scheduler asks the exchange for its time through ccxt)."""
    sim.clock.set(now_ms)
    reports = []
    for d in plan():
        reports.append(evaluate_market(d.market, d.candle_ms, d.run_ids, limit=d.limit))
    return reports


def new_run(session: Session, user, *, strategy="sma_cross", params=None, symbol="BTC/USDT", stake=10_000.0,
            start=True) -> Run:
    run = run_service.create_run(session=session, owner=user, run_in=RunCreate(
        strategy=strategy, params=params or {}, exchange="binance", symbol=symbol, timeframe="1m",
        mode="paper", stake=stake))
    if start:
        run = run_service.start_run(session=session, owner=user, run_id=run.id)
    return run


def reload(session: Session, run: Run) -> Run:
    session.expire_all()
    return session.get(Run, run.id)


def count(session: Session, model) -> int:
    return session.exec(select(func.count()).select_from(model)).one()


@pytest.mark.parametrize("step_minutes", [1, 7], ids=["every-candle", "catch-up-7"])
def test_paper_trades_match_crossovers_fees_and_equity(session, market_catalog, make_user, step_minutes):
    user, _ = make_user()
    fast, slow = 5, 20
    run = new_run(session, user, params={"fast": fast, "slow": slow})
    end = T0 + 300 * MINUTE
    now = T0 + 25 * MINUTE + 1
    while now <= end:
        tick(market_catalog, now)
        now += step_minutes * MINUTE
    run = reload(session, run)
    assert run.status == RunStatus.running
    snaps = session.exec(select(EquitySnapshot).where(EquitySnapshot.run_id == run.id)
                         .order_by(EquitySnapshot.candle_ms)).all()
    times = [s.candle_ms for s in snaps]
    # One snapshot per candle, none missing, none twice, from the first evaluated candle on.
    assert times == list(range(times[0], times[-1] + MINUTE, MINUTE))
    candles = load_candles("BTCUSDT", "1m")
    close_at = dict(zip(candles["time"].tolist(), candles["close"].tolist()))
    for s in snaps:
        assert s.price == pytest.approx(close_at[s.candle_ms], rel=1e-12)
        assert s.equity == pytest.approx(s.cash + s.position_amount * s.price, rel=1e-12)

    expected = expected_trades(candles, first_ms=times[0], last_ms=times[-1], fast=fast, slow=slow,
                               stake=10_000.0, fee=0.001, step=0.00001)
    trades = session.exec(select(Trade).where(Trade.run_id == run.id, Trade.status == TradeStatus.closed)
                          .order_by(Trade.id)).all()
    assert len(expected) >= 3, "the window must contain several round trips"
    assert [(t.entry_time_ms, t.exit_time_ms) for t in trades] == [
        (e.entry_time_ms, e.exit_time_ms) for e in expected]
    for got, want in zip(trades, expected):
        assert got.entry_price == pytest.approx(want.entry_price, rel=1e-12)
        assert got.exit_price == pytest.approx(want.exit_price, rel=1e-12)
        assert got.amount == pytest.approx(want.amount, rel=1e-9)
        assert got.entry_fee == pytest.approx(want.entry_fee, rel=1e-9)
        assert got.exit_fee == pytest.approx(want.exit_fee, rel=1e-9)
        assert got.pnl == pytest.approx(want.pnl, rel=1e-9, abs=1e-9)
    assert run.realised_pnl == pytest.approx(sum(t.pnl for t in expected), rel=1e-9)
    # Every fill belongs to a filled order whose client order id is the deterministic one.
    fills = session.exec(select(Fill).where(Fill.run_id == run.id)).all()
    orders = {o.id: o for o in session.exec(select(Order).where(Order.run_id == run.id))}
    assert len(fills) == 2 * len(trades) + sum(1 for t in session.exec(
        select(Trade).where(Trade.run_id == run.id, Trade.status == TradeStatus.open)))
    for fill in fills:
        order = orders[fill.order_id]
        assert order.status == OrderStatus.filled
        assert order.client_order_id == client_order_id(run.id, order.signal_candle_ms, order.reason)
        assert len(order.client_order_id) <= 36
        assert fill.time_ms == order.signal_candle_ms + MINUTE  # next candle's open


def test_redelivered_tick_writes_nothing(session, market_catalog, make_user):
    user, _ = make_user()
    run = new_run(session, user, params={"fast": 5, "slow": 20})
    market_catalog.clock.set(T0 + 60 * MINUTE + 1)
    dispatches = plan()
    assert len(dispatches) == 1
    d = dispatches[0]
    first = evaluate_market(d.market, d.candle_ms, d.run_ids, limit=d.limit)
    assert first.ticks == 1
    before = {m.__name__: count(session, m) for m in (EquitySnapshot, Order, Fill, Trade, RunEvent)}
    again = evaluate_market(d.market, d.candle_ms, d.run_ids, limit=d.limit)
    assert again.ticks == 0
    assert {m.__name__: count(session, m) for m in (EquitySnapshot, Order, Fill, Trade, RunEvent)} == before
    # And the scheduler does not dispatch the same market and candle twice.
    assert plan() == []
    assert reload(session, run).last_candle_ms == d.candle_ms


BROKEN = '''
from tradefleet.strategy import Strategy


class RaisesInSignals(Strategy):
    """Deliberately broken: raises inside signals()."""
    timeframe = "1m"
    startup_candles = 2

    def signals(self, candles):
        raise RuntimeError("deliberate failure")
'''


def test_strategy_error_pauses_only_its_run(session, market_catalog, make_user, settings_env, tmp_path):
    folder = tmp_path / "strategies"
    folder.mkdir()
    shutil.copy(REPO_ROOT / "strategies" / "sma_cross.py", folder)
    (folder / "raises_in_signals.py").write_text(BROKEN)
    settings_env(STRATEGIES_DIR=str(folder), EXCHANGE_API_URLS=f'{{"binance": "{market_catalog.base_url}"}}')
    alice, _ = make_user()
    bob, _ = make_user()
    broken = new_run(session, alice, strategy="raises_in_signals")
    healthy = [new_run(session, alice, params={"fast": 5, "slow": 20}), new_run(session, bob)]
    for minute in range(40, 45):
        tick(market_catalog, T0 + minute * MINUTE + 1)
    broken = reload(session, broken)
    assert broken.status == RunStatus.paused
    assert "deliberate failure" in broken.status_reason
    events = session.exec(select(RunEvent).where(RunEvent.run_id == broken.id, RunEvent.kind == "paused")).all()
    assert len(events) == 1 and "RuntimeError: deliberate failure" in events[0].message
    assert count(session, EquitySnapshot) == 5 * 2  # the healthy runs ticked every candle
    for run in healthy:
        run = reload(session, run)
        assert run.status == RunStatus.running
        assert run.last_candle_ms == T0 + 43 * MINUTE
    assert session.exec(select(func.count()).select_from(EquitySnapshot)
                        .where(EquitySnapshot.run_id == broken.id)).one() == 0


def test_one_fetch_per_market_per_candle(session, market_catalog, make_user, redis_url, settings_env):
    settings_env(ENGINE_BATCH_SIZE=7)  # several batches (tasks) per market
    users = [make_user()[0] for _ in range(3)]
    for i in range(30):
        new_run(session, users[i % 3], symbol=("BTC/USDT", "ETH/USDT", "BNB/USDT")[i % 3],
                params={"fast": 3 + i % 5, "slow": 20 + i})
    candles = 0
    for minute in range(60, 66):
        market_catalog.requests.clear()
        reports = tick(market_catalog, T0 + minute * MINUTE + 1)
        assert sum(r.ticks for r in reports) == 30
        assert len(reports) == 3 * 2  # 10 runs per market in batches of 7
        assert len(market_catalog.klines_requests()) == 3  # one per market, not per batch or run
        candles += 1
    assert count(session, EquitySnapshot) == 30 * candles


def test_far_behind_run_skips_ahead_with_an_event(session, market_catalog, make_user, settings_env):
    settings_env(ENGINE_MAX_CATCHUP_CANDLES=5)
    user, _ = make_user()
    run = new_run(session, user, params={"fast": 5, "slow": 20})
    tick(market_catalog, T0 + 30 * MINUTE + 1)
    tick(market_catalog, T0 + 130 * MINUTE + 1)  # the worker was away for 100 candles
    run = reload(session, run)
    assert run.last_candle_ms == T0 + 129 * MINUTE
    skipped = session.exec(select(RunEvent).where(RunEvent.run_id == run.id, RunEvent.kind == "skipped")).all()
    assert len(skipped) == 1 and "100 candles behind" in skipped[0].message
    assert count(session, EquitySnapshot) == 1 + 5


def test_exchange_down_delays_and_loses_nothing(session, market_catalog, make_user, settings_env):
    from tradefleet.market.candles import public_exchange

    user, _ = make_user()
    run = new_run(session, user, params={"fast": 5, "slow": 20})
    market_catalog.clock.set(T0 + 40 * MINUTE + 1)
    dispatches = plan()
    settings_env(EXCHANGE_API_URLS='{"binance": "http://127.0.0.1:9"}')  # nothing listens there
    public_exchange.cache_clear()
    assert plan() == []  # the exchange's clock cannot be read: nothing dispatched, nothing lost
    d = dispatches[0]
    with pytest.raises(ccxt.NetworkError):
        evaluate_market(d.market, d.candle_ms, d.run_ids, limit=d.limit)
    assert count(session, EquitySnapshot) == 0
    assert reload(session, run).status == RunStatus.running
    settings_env(EXCHANGE_API_URLS=f'{{"binance": "{market_catalog.base_url}"}}')
    public_exchange.cache_clear()
    report = evaluate_market(d.market, d.candle_ms, d.run_ids, limit=d.limit)  # the retry succeeds
    assert report.ticks == 1


def test_stop_cancels_the_pending_order(session, market_catalog, make_user):
    user, _ = make_user()
    run = new_run(session, user, params={"fast": 5, "slow": 20})
    candles = load_candles("BTCUSDT", "1m")
    from support.reference import crossovers

    up, _ = crossovers(candles["close"], 5, 20)
    first_up = next(t for t in range(21, len(up)) if up[t])
    # Evaluate exactly up to the crossover candle: the buy is decided but not yet filled.
    tick(market_catalog, int(candles["time"][first_up]) - 5 * MINUTE + MINUTE + 1)
    tick(market_catalog, int(candles["time"][first_up]) + MINUTE + 1)
    orders = session.exec(select(Order).where(Order.run_id == run.id)).all()
    assert [o.status for o in orders] == [OrderStatus.open]
    run_service.stop_run(session=session, owner=user, run_id=run.id)
    session.expire_all()
    assert [o.status for o in session.exec(select(Order).where(Order.run_id == run.id))] == [OrderStatus.cancelled]
    tick(market_catalog, int(candles["time"][first_up]) + 3 * MINUTE + 1)
    assert count(session, Fill) == 0
    assert reload(session, run).status == RunStatus.stopped


def test_client_order_id_is_deterministic_and_binance_shaped():
    run_id = uuid.UUID("ffffffff-ffff-ffff-ffff-ffffffffffff")
    cid = client_order_id(run_id, 1704067200000, "enter_long")
    assert cid == client_order_id(run_id, 1704067200000, "enter_long")
    assert cid != client_order_id(run_id, 1704067200000, "exit_long")
    assert len(cid) == 36
    import re

    assert re.fullmatch(r"[.A-Z:/a-z0-9_-]{1,36}", cid)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite has no row locks
def test_a_run_locked_elsewhere_is_skipped_and_reported_busy(session, market_catalog, make_user, db_url):
    """PostgreSQL: a run whose row another transaction holds (a stop in flight, a slow task) is
    skipped without waiting and reported busy; the task evaluates it again once the row is free."""
    from sqlalchemy import create_engine, text

    user, _ = make_user()
    held, free = new_run(session, user), new_run(session, user, params={"fast": 5, "slow": 20})
    market_catalog.clock.set(T0 + 40 * MINUTE + 1)
    d = plan()[0]
    other = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with other.connect() as connection:
        connection.execute(text("SELECT id FROM run WHERE id = :id FOR UPDATE"), {"id": held.id})
        report = evaluate_market(d.market, d.candle_ms, d.run_ids, limit=d.limit)
        assert report.busy_run_ids == [held.id] and report.ticks == 1
        connection.rollback()
    other.dispose()
    assert reload(session, held).last_candle_ms is None
    again = evaluate_market(d.market, d.candle_ms, report.busy_run_ids, limit=d.limit)
    assert again.busy_run_ids == [] and again.ticks == 1
    assert reload(session, held).last_candle_ms == d.candle_ms
    assert reload(session, free).last_candle_ms == d.candle_ms


def test_a_market_gone_from_the_catalog_pauses_its_runs_with_the_reason(session, market_catalog, make_user):
    """A catalog refresh that no longer lists a market leaves its fee and precision unknown: the tick
    writes nothing (no fee is assumed) and the worker task pauses the runs saying why."""
    from tradefleet.engine.evaluate import MarketNotInCatalog
    from tradefleet.models import ExchangeMarket
    from tradefleet.worker.tasks import evaluate_market as evaluate_task

    user, _ = make_user()
    run = new_run(session, user, params={"fast": 5, "slow": 20})
    tick(market_catalog, T0 + 25 * MINUTE + 1)
    snapshots = count(session, EquitySnapshot)
    assert snapshots > 0
    session.delete(session.get(ExchangeMarket, ("binance", "BTC/USDT")))
    session.commit()

    market_catalog.clock.set(T0 + 26 * MINUTE + 1)
    (due,) = plan()
    with pytest.raises(MarketNotInCatalog, match="BTC/USDT is not in the catalog"):
        evaluate_market(due.market, due.candle_ms, due.run_ids, limit=due.limit)
    assert count(session, EquitySnapshot) == snapshots
    assert reload(session, run).status == RunStatus.running

    result = evaluate_task.apply(args=[due.market.exchange, due.market.symbol, due.market.timeframe,
                                       due.candle_ms, [str(i) for i in due.run_ids], due.limit]).get()
    assert result["paused"] == 1
    run = reload(session, run)
    assert run.status == RunStatus.paused
    assert "not in the catalog" in run.status_reason and "fee and precision are unknown" in run.status_reason
    assert count(session, EquitySnapshot) == snapshots


def test_kill_and_live_buy_without_a_catalog_entry_say_so(session, market_catalog, make_user):
    """The paper kill still closes the position of a market gone from the catalog, charging no fee and
    saying so; a live buy on such a market is refused with the reason instead of assuming a fee."""
    from tradefleet.execution.orders import _raw_amount  # the sizing of a live buy
    from tradefleet.models import ExchangeMarket
    from tradefleet.services.runs import kill_run_row

    user, _ = make_user()
    run = new_run(session, user, params={"fast": 5, "slow": 20})
    now = T0 + 25 * MINUTE + 1
    while reload(session, run).position_amount <= 0:
        now += MINUTE
        assert now < T0 + 300 * MINUTE, "the strategy never entered"
        tick(market_catalog, now)
    session.delete(session.get(ExchangeMarket, ("binance", "BTC/USDT")))
    session.commit()

    buy = Order(run_id=run.id, client_order_id="x", symbol="BTC/USDT", side="buy", type="market", amount=0.0,
                quote_amount=100.0, status=OrderStatus.intent, reason="enter_long", signal_candle_ms=now)
    with pytest.raises(ccxt.InvalidOrder, match="not in the market catalog"):
        _raw_amount(session, buy, reload(session, run))

    run = kill_run_row(session=session, run=reload(session, run))
    assert run.status == RunStatus.stopped and run.position_amount == 0
    kill = session.exec(select(Order).where(Order.run_id == run.id, Order.reason == "kill")).one()
    assert kill.status == OrderStatus.filled and kill.fee == 0.0
    event = session.exec(select(RunEvent).where(RunEvent.run_id == run.id, RunEvent.kind == "killed")).one()
    assert "market not in the catalog: no fee charged" in event.message
    assert session.exec(select(Trade).where(Trade.run_id == run.id, Trade.status == TradeStatus.open)).first() is None
