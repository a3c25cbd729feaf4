"""The wire shape of every live-update kind: the exact ``event:`` and ``data`` JSON the frontend reads
(``frontend/js/events.js`` and the pages), built from rows as the publishers build them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from tradefleet.config import REPO_ROOT
from tradefleet.events.outbox import Outbox
from tradefleet.events.updates import (
    BacktestUpdate,
    CandleUpdate,
    EquityUpdate,
    FillUpdate,
    LiveUpdate,
    LiveUpdateKind,
    LogUpdate,
    OrderUpdate,
    SessionUpdate,
    StatusUpdate,
    StrategyUpdate,
    TradeUpdate,
    json_default,
)
from tradefleet.models import (
    BacktestStatus,
    EventLevel,
    Fill,
    Order,
    OrderSide,
    OrderStatus,
    OrderType,
    Run,
    RunEvent,
    RunStatus,
    Trade,
    TradeStatus,
)
from tradefleet.models.strategy_version import VersionStatus

RUN = uuid.UUID("11111111-1111-4111-8111-111111111111")
ORDER = uuid.UUID("22222222-2222-4222-8222-222222222222")
AT = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def wire(update: LiveUpdate) -> tuple[str, str]:
    """``(event, data)`` as the Redis transport writes them."""
    return update.kind.value, json.dumps(update.to_json(), default=json_default, separators=(",", ":"))


def test_candle_and_equity():
    candle = CandleUpdate(run_id=RUN, time_ms=1_700_000_000_000, open=100.0, high=101.5, low=99, close=100.5,
                          volume=12.25)
    assert wire(candle) == ("candle", '{"run_id":"11111111-1111-4111-8111-111111111111","time_ms":1700000000000,'
                            '"open":100.0,"high":101.5,"low":99.0,"close":100.5,"volume":12.25}')
    snapshot = dict(run_id=RUN, candle_ms=1_700_000_000_000, cash=9_000.0, position_amount=0.01, price=100_000.0,
                    equity=10_000.0)
    assert wire(EquityUpdate.of(snapshot)) == (
        "equity", '{"run_id":"11111111-1111-4111-8111-111111111111","candle_ms":1700000000000,"equity":10000.0,'
        '"cash":9000.0,"position_amount":0.01,"price":100000.0}')


def test_order_fill_trade_from_rows():
    order = Order(id=ORDER, run_id=RUN, client_order_id="tf-abc", symbol="BTC/USDT", side=OrderSide.buy,
                  type=OrderType.market, amount=0.01, status=OrderStatus.filled, reason="enter_long",
                  signal_candle_ms=1_700_000_000_000, filled=0.01, average=100_000.0, cost=1_000.0, fee=1.0,
                  fee_currency="USDT", created_at=AT, updated_at=AT)
    assert OrderUpdate.of(RUN, order).to_json() == {"run_id": str(RUN), "order": {
        "id": str(ORDER), "client_order_id": "tf-abc", "exchange_order_id": None, "symbol": "BTC/USDT",
        "side": "buy", "type": "market", "amount": 0.01, "price": None, "quote_amount": None, "status": "filled",
        "reason": "enter_long", "signal_candle_ms": 1_700_000_000_000, "filled": 0.01, "average": 100_000.0,
        "cost": 1_000.0, "fee": 1.0, "fee_currency": "USDT", "status_reason": None,
        "created_at": "2026-01-02T03:04:05.678000+00:00", "updated_at": "2026-01-02T03:04:05.678000+00:00"}}
    fill = Fill(id=7, order_id=ORDER, run_id=RUN, side=OrderSide.buy, time_ms=1_700_000_060_000, price=100_000.0,
                amount=0.01, cost=1_000.0, fee=1.0, fee_currency="USDT")
    as_row = dict(order_id=ORDER, run_id=RUN, side=OrderSide.buy, time_ms=1_700_000_060_000, price=100_000.0,
                  amount=0.01, cost=1_000.0, fee=1.0, fee_currency="USDT", id=7)  # the engine's buffered row
    expected_fill = {"run_id": str(RUN), "fill": {
        "id": 7, "order_id": str(ORDER), "side": "buy", "time_ms": 1_700_000_060_000, "price": 100_000.0,
        "amount": 0.01, "cost": 1_000.0, "fee": 1.0, "fee_currency": "USDT"}}
    assert FillUpdate.of(RUN, fill).to_json() == FillUpdate.of(RUN, as_row).to_json() == expected_fill
    trade = Trade(id=3, run_id=RUN, status=TradeStatus.open, amount=0.01, entry_time_ms=1_700_000_060_000,
                  entry_price=100_000.0, entry_fee=1.0)
    assert TradeUpdate.of(RUN, trade).to_json() == {"run_id": str(RUN), "trade": {
        "id": 3, "status": "open", "amount": 0.01, "entry_time_ms": 1_700_000_060_000, "entry_price": 100_000.0,
        "entry_fee": 1.0, "exit_time_ms": None, "exit_price": None, "exit_fee": None, "exit_reason": None,
        "pnl": None, "pnl_pct": None}}
    assert [u.kind for u in (OrderUpdate.of(RUN, order), FillUpdate.of(RUN, fill), TradeUpdate.of(RUN, trade))] == [
        LiveUpdateKind.order, LiveUpdateKind.fill, LiveUpdateKind.trade]


def test_log_and_status():
    event = RunEvent(id=42, run_id=RUN, created_at=AT, candle_ms=None, level=EventLevel.warning, kind="log",
                     message="RSI 71", data={"rsi": 71.2})
    assert wire(LogUpdate.of(RUN, event)) == (
        "log", '{"run_id":"11111111-1111-4111-8111-111111111111","event":{"id":42,'
        '"created_at":"2026-01-02T03:04:05.678000+00:00","candle_ms":null,"level":"warning","kind":"log",'
        '"message":"RSI 71","data":{"rsi":71.2}}}')
    run = Run.model_construct(id=RUN, status=RunStatus.paused, status_reason="strategy error: boom")
    assert wire(StatusUpdate.of(run)) == (
        "status", '{"run_id":"11111111-1111-4111-8111-111111111111","status":"paused",'
        '"status_reason":"strategy error: boom"}')
    assert StatusUpdate(run_id=RUN, status=RunStatus.running, status_reason=None).to_json() == {
        "run_id": str(RUN), "status": "running", "status_reason": None}


def test_backtest_strategy_session():
    backtest = uuid.UUID("33333333-3333-4333-8333-333333333333")
    assert wire(BacktestUpdate(backtest_id=backtest, status=BacktestStatus.running, progress=40,
                               stage="simulating")) == (
        "backtest", '{"backtest_id":"33333333-3333-4333-8333-333333333333","status":"running","progress":40,'
        '"stage":"simulating","error":null}')
    version = uuid.UUID("44444444-4444-4444-8444-444444444444")
    assert wire(StrategyUpdate(version_id=version, status=VersionStatus.pending_review, name="sma_cross")) == (
        "strategy", '{"version_id":"44444444-4444-4444-8444-444444444444","status":"pending_review",'
        '"name":"sma_cross"}')
    assert wire(SessionUpdate(token_version=3)) == ("session", '{"token_version":3}')


def test_kinds_match_the_frontend():
    """Every kind but ``session`` (read by the stream itself) is one the frontend listens to."""
    source = (REPO_ROOT / "frontend/js/events.js").read_text()
    listed = source.split("EVENT_TYPES = [", 1)[1].split("]", 1)[0]
    assert {k.strip().strip('"') for k in listed.split(",")} == {k.value for k in LiveUpdateKind} - {"session"}


def test_outbox_takes_only_live_updates():
    box = Outbox()
    box.add(RUN, SessionUpdate(token_version=1))
    assert len(box) == 1
    with pytest.raises(TypeError, match="not a live update"):
        box.add(RUN, {"run_id": str(RUN)})  # type: ignore[arg-type]
    assert len(box) == 1
