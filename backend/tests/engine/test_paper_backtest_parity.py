"""Parity: a paper run replayed by the simulator over recorded candles makes the same trades, at the
same prices, with the same PnL, as a backtest of the same strategy over the same candles."""

from __future__ import annotations

import shutil

import pytest
from support.reference import load_candles
from sqlmodel import select
from test_fleet_engine import MINUTE, T0, new_run, tick

from tradefleet.backtest import run_backtest
from tradefleet.config import REPO_ROOT
from tradefleet.market.candles import frame_from_ohlcv
from tradefleet.models import EquitySnapshot, Trade, TradeStatus
from tradefleet.sandbox.registry import get_registry

CASES = {
    "sma_cross": {"fast": 5, "slow": 20},
    "rsi_reversion": {"period": 7, "oversold": 35.0, "overbought": 65.0},
    "bollinger_breakout": {"period": 10, "width": 1.0},  # fixed stoploss
    "macd_trend": {"fast": 4, "slow": 9, "signal": 3},  # trailing stop
    "dca_dip": {"slice_pct": 25.0, "step_pct": 0.1, "max_buys": 3, "take_profit_pct": 0.2},  # stateful
    "sma_protected": {"fast": 10, "slow": 30},  # tight stoploss, take-profit and trailing stop
}

PROTECTED = """
    stoploss = -0.0012
    take_profit = 0.002
    trailing_stop = 0.0018
"""


@pytest.fixture
def strategies_dir(tmp_path, settings_env, market_catalog):
    """The shipped strategies plus ``sma_protected`` (and the simulator still configured)."""
    folder = tmp_path / "strategies"
    shutil.copytree(REPO_ROOT / "strategies", folder)
    # sma_cross under another name, with protective exits tight enough to fire on 1m candles.
    source = (folder / "sma_cross.py").read_text().replace("class SmaCross(Strategy):", "class SmaProtected(Strategy):")
    head, body = source.split("    timeframe = ", 1)
    (folder / "sma_protected.py").write_text(head + PROTECTED.lstrip("\n") + "    timeframe = " + body)
    settings_env(STRATEGIES_DIR=str(folder), EXCHANGE_API_URLS=f'{{"binance": "{market_catalog.base_url}"}}')
    return folder


@pytest.mark.parametrize("strategy", list(CASES))
def test_paper_run_equals_backtest(session, market_catalog, strategies_dir, make_user, strategy):
    params = CASES[strategy]
    user, _ = make_user()
    run = new_run(session, user, strategy=strategy, params=params)
    klass = get_registry().get(strategy)
    need = klass(klass.validate_params(params)).required_candles()
    now = T0 + need * MINUTE + 1
    while now <= T0 + (need + 400) * MINUTE:
        tick(market_catalog, now)
        now += 3 * MINUTE  # three candles per tick: the catch-up path too
    session.expire_all()
    snaps = session.exec(select(EquitySnapshot).where(EquitySnapshot.run_id == run.id)
                         .order_by(EquitySnapshot.candle_ms)).all()
    first, last = snaps[0].candle_ms, snaps[-1].candle_ms
    paper = session.exec(select(Trade).where(Trade.run_id == run.id, Trade.status == TradeStatus.closed)
                         .order_by(Trade.id)).all()

    raw = load_candles("BTCUSDT", "1m")
    rows = [[t, o, h, lo, c, v] for t, o, h, lo, c, v in zip(*(raw[k] for k in ("time", "open", "high", "low",
                                                                                 "close", "volume")))
            if t <= last]
    result = run_backtest(klass, frame_from_ohlcv(rows), params=params, fee=0.001, amount_step=0.00001,
                          min_amount=0.00001, min_cost=5.0, start=first, end=last + MINUTE)
    backtest = [t for t in result.trades if not t["is_open"]]
    assert len(backtest) >= 2, "the window must hold several round trips"
    assert [(t.entry_time_ms, t.exit_time_ms, t.exit_reason) for t in paper] == [
        (t["entry_time_ms"], t["exit_time_ms"], t["exit_reason"]) for t in backtest]
    for p, b in zip(paper, backtest):
        assert p.entry_price == pytest.approx(b["entry_price"], rel=1e-12)
        assert p.exit_price == pytest.approx(b["exit_price"], rel=1e-12)
        assert p.amount == pytest.approx(b["amount"], rel=1e-12)
        assert p.pnl == pytest.approx(b["pnl"], rel=1e-9, abs=1e-9)
    equity = dict(zip(result.equity_time_ms.tolist(), result.equity.tolist()))
    for s in snaps:
        assert s.equity == pytest.approx(equity[s.candle_ms], rel=1e-12)
    if strategy == "sma_protected":
        assert {t.exit_reason for t in paper} >= {"stoploss", "take_profit", "trailing_stop", "exit_long"}
