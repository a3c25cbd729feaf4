"""The event-driven simulation equals the plain per-candle loop of the rules, bit for bit, on random
signals and settings over several datasets; and each rule of the fill model on hand-made candles."""

from __future__ import annotations

import numpy as np
import pytest
from per_bar import per_bar
from support.reference import load_candles

from tradefleet.backtest import simulate


def _synthetic(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """A random walk with gaps between candles (open != previous close) and wide wicks."""
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    gap = rng.normal(0, 0.004, n) * (rng.random(n) < 0.2)
    open_ = np.concatenate(([100.0], close[:-1])) * np.exp(gap)
    wick = np.abs(rng.normal(0, 0.006, (2, n)))
    high = np.maximum(open_, close) * (1 + wick[0])
    low = np.minimum(open_, close) * (1 - wick[1])
    return {"open": open_, "high": high, "low": low, "close": close}


def _datasets() -> dict[str, dict[str, np.ndarray]]:
    out = {"synthetic": _synthetic(np.random.default_rng(7), 4000)}
    for symbol, timeframe, rows in (("BTCUSDT", "1m", 5000), ("DOGEUSDT", "5m", 5000), ("ETHUSDT", "1h", 3000)):
        data = load_candles(symbol, timeframe)
        out[f"{symbol}-{timeframe}"] = {k: data[k][:rows] for k in ("open", "high", "low", "close")}
    return out


DATASETS = _datasets()


def _random_case(seed: int):
    rng = np.random.default_rng(seed)
    name = sorted(DATASETS)[seed % len(DATASETS)]
    data = DATASETS[name]
    n = len(data["open"])
    lo = int(rng.integers(0, n // 2))
    hi = int(rng.integers(lo + 2, n + 1))
    data = {k: v[lo:hi] for k, v in data.items()}
    m = hi - lo
    density = rng.choice([0.002, 0.02, 0.1, 0.4])
    enter = rng.random(m) < density
    exit_ = rng.random(m) < rng.choice([0.0, 0.002, 0.02, 0.1, 0.4])
    price = float(data["close"][0])
    settings = dict(
        stake=float(rng.choice([1000.0, 10_000.0, 123.45])),
        fee=float(rng.choice([0.0, 0.001, 0.00075, 0.01])),
        amount_step=rng.choice([None, 1e-5, 0.001, 1.0, 10.0]),
        min_cost=rng.choice([None, 5.0, 500.0]),
        min_amount=rng.choice([None, None, 0.5 * 1000 / price]),
        position_size=float(rng.choice([1.0, 1.0, 0.5, 0.25])),
        stoploss=rng.choice([None, -0.002, -0.01, -0.05]),
        take_profit=rng.choice([None, 0.003, 0.01, 0.05]),
        trailing_stop=rng.choice([None, 0.002, 0.01, 0.03]),
    )
    settings = {k: (float(v) if isinstance(v, np.floating) else v) for k, v in settings.items()}
    return name, data, enter, exit_, settings


@pytest.mark.parametrize("seed", range(400))
def test_event_driven_equals_per_bar_loop(seed):
    name, d, enter, exit_, settings = _random_case(seed)
    fast = simulate(d["open"], d["high"], d["low"], d["close"], enter, exit_, **settings)
    trades, open_trade, equity = per_bar(d["open"], d["high"], d["low"], d["close"], enter, exit_, **settings)
    assert fast.trades == trades, (name, settings)
    assert fast.open_trade == open_trade
    assert np.array_equal(fast.equity, equity), (name, settings)


def test_property_cases_exercise_every_exit():
    reasons = set()
    rejected = 0
    for seed in range(400):
        _, d, enter, exit_, settings = _random_case(seed)
        sim = simulate(d["open"], d["high"], d["low"], d["close"], enter, exit_, **settings)
        reasons |= {t[7] for t in sim.trades}
        rejected += len(sim.trades) == 0 and enter.any()
    assert reasons == {"exit_long", "stoploss", "trailing_stop", "take_profit"}
    assert rejected  # some buys were too small for the market's minimums


# ------------------------------------------------------------------ each rule on hand-made candles
def run(rows, enter=(), exit_=(), **settings):
    """``rows``: (open, high, low, close) per candle; ``enter`` / ``exit_``: candle numbers with a signal."""
    a = np.array(rows, dtype=float)
    n = len(a)
    en, ex = np.zeros(n, bool), np.zeros(n, bool)
    en[list(enter)] = True
    ex[list(exit_)] = True
    settings = {"stake": 1000.0, "fee": 0.0, **settings}
    sim = simulate(a[:, 0], a[:, 1], a[:, 2], a[:, 3], en, ex, **settings)
    ref = per_bar(a[:, 0], a[:, 1], a[:, 2], a[:, 3], en, ex, **settings)
    assert (sim.trades, sim.open_trade) == ref[:2] and np.array_equal(sim.equity, ref[2])
    return sim


FLAT = (100.0, 101.0, 99.0, 100.0)


def test_orders_fill_at_the_next_open_with_fees():
    sim = run([FLAT, (102, 103, 101, 102), (104, 105, 103, 104), (106, 107, 105, 106)], enter=[0], exit_=[1],
              fee=0.001)
    (e, price, amount, entry_fee, x, exit_price, exit_fee, reason), = sim.trades
    assert (e, price, x, exit_price, reason) == (1, 102.0, 2, 104.0, "exit_long")
    assert amount == 1000.0 / (102 * 1.001)
    assert entry_fee == amount * 102 * 0.001 and exit_fee == amount * 104 * 0.001
    assert sim.equity[0] == 1000.0 and sim.equity[3] == sim.cash[3]


def test_a_gap_through_the_stop_exits_at_the_open():
    sim = run([FLAT, FLAT, (90, 91, 85, 88)], enter=[0], stoploss=-0.05)
    assert sim.trades[0][4:] == (2, 90.0, 0.0, "stoploss")


def test_stop_inside_the_candle_exits_at_the_stop_level():
    sim = run([FLAT, FLAT, (100, 100.5, 94, 99)], enter=[0], stoploss=-0.05)
    assert sim.trades[0][4:] == (2, 100.0 * (1 - 0.05), 0.0, "stoploss")


def test_stop_wins_when_stop_and_take_profit_are_both_inside_one_candle():
    sim = run([FLAT, FLAT, (100, 111, 94, 100)], enter=[0], stoploss=-0.05, take_profit=0.1)
    assert sim.trades[0][7] == "stoploss"


def test_take_profit_gap_exits_at_the_open_and_inside_at_the_target():
    assert run([FLAT, FLAT, (112, 113, 111, 112)], enter=[0], take_profit=0.1).trades[0][4:6] == (2, 112.0)
    assert run([FLAT, FLAT, (105, 111, 104, 106)], enter=[0], take_profit=0.1).trades[0][4:] == (
        2, 100.0 * 1.1, 0.0, "take_profit")


def test_protective_exit_on_the_entry_candle():
    sim = run([FLAT, (100, 100, 90, 92)], enter=[0], stoploss=-0.05)
    assert sim.trades[0][0] == 1 and sim.trades[0][4] == 1 and sim.open_trade is None


def test_trailing_stop_uses_highs_before_the_candle_only():
    # Candle 2 makes a high of 120 and falls to 110 in the same candle: the trailing level known at its
    # open is still 100 * 0.9 = 90, so no exit; on candle 3 the level is 120 * 0.9 = 108.
    rows = [FLAT, (100, 100, 100, 100), (100, 120, 110, 115), (115, 116, 107, 110)]
    sim = run(rows, enter=[0], trailing_stop=0.1, stoploss=-0.2)
    assert sim.trades[0][4:] == (3, 120 * (1 - 0.1), 0.0, "trailing_stop")
    # With a fixed stop above the trailing level, the fixed stop binds and names the exit.
    sim = run([FLAT, FLAT, (100, 100, 90, 95)], enter=[0], trailing_stop=0.1, stoploss=-0.05)
    assert sim.trades[0][4:] == (2, 95.0, 0.0, "stoploss")


def test_re_entry_on_the_candle_of_a_protective_exit():
    sim = run([FLAT, FLAT, (100, 100, 90, 95), (96, 97, 95, 96)], enter=[0, 2], stoploss=-0.05)
    assert [(t[0], t[4]) for t in sim.trades] == [(1, 2)]
    assert sim.open_trade[0] == 3


def test_enter_and_exit_on_the_same_candle_is_no_entry():
    assert run([FLAT, FLAT, FLAT], enter=[0], exit_=[0]).open_trade is None


def test_a_rejected_buy_leaves_the_run_flat_and_may_retry():
    sim = run([FLAT, (100, 100, 100, 100), (50, 50, 50, 50), FLAT], enter=[0, 1], min_cost=1500.0)
    assert sim.trades == [] and sim.open_trade is None
    sim = run([FLAT, (2000, 2000, 2000, 2000), (50, 50, 50, 50), FLAT], enter=[0, 1], amount_step=1.0)
    assert sim.open_trade == (2, 50.0, 20.0, 0.0)  # 1000 / 2000 rounds to 0; retried at the next open


def test_an_open_position_at_the_end_stays_open_valued_at_the_last_close():
    sim = run([FLAT, FLAT, (100, 101, 99, 110)], enter=[0])
    assert sim.trades == [] and sim.open_trade == (1, 100.0, 10.0, 0.0)
    assert sim.equity[-1] == 1100.0


def test_a_decision_on_the_last_candle_never_fills():
    sim = run([FLAT, FLAT], enter=[1])
    assert sim.trades == [] and sim.open_trade is None


def test_position_size_spends_a_fraction_of_cash():
    sim = run([FLAT, FLAT, FLAT], enter=[0], position_size=0.25)
    assert sim.open_trade[2] == 250.0 / 100.0
    assert sim.equity[-1] == 1000.0


def test_long_position_scans_far_for_a_stop():
    # A position held for thousands of candles before its stop: the chunked scan finds it.
    rows = [FLAT] * 5000 + [(100, 100, 80, 85)]
    sim = run(rows, enter=[0], stoploss=-0.1)
    assert sim.trades[0][4] == 5000 and sim.trades[0][5] == 100.0 * 0.9


# ------------------------------------------------------------------ the shared per-candle account
@pytest.mark.parametrize("seed", range(0, 400, 7))
def test_event_driven_equals_the_paper_account(seed):
    """``execution.account.CandleAccount`` (the per-candle rules the live engine steps) gives the same
    trades and equity. Its exit price is proceeds / amount and its PnL proceeds - cost - fees: equal
    to ours up to the last bits of a float, hence approx on those two."""
    account_mod = pytest.importorskip("tradefleet.execution.account")
    from tradefleet.execution.paper import MarketRules, Wallet

    _, d, enter, exit_, s = _random_case(seed)
    sim = simulate(d["open"], d["high"], d["low"], d["close"], enter, exit_, **s)
    account = account_mod.CandleAccount(
        MarketRules(taker=s["fee"], amount_step=s["amount_step"], min_amount=s["min_amount"], min_cost=s["min_cost"]),
        wallet=Wallet(cash=s["stake"]), stoploss=s["stoploss"], take_profit=s["take_profit"],
        trailing_stop=s["trailing_stop"])
    equity, closed = [], []
    for i in range(len(d["open"])):
        account.open_candle(i, float(d["open"][i]))
        account.check_protective_exits(i, float(d["open"][i]), float(d["high"][i]), float(d["low"][i]))
        account.close_candle(i, float(d["close"][i]), enter=bool(enter[i]), exit_=bool(exit_[i]),
                             size=s["position_size"])
        closed += account.take_events().closed
        equity.append(account.equity(float(d["close"][i])))
    assert np.array_equal(sim.equity, np.array(equity))
    assert len(closed) == len(sim.trades)
    for ours, theirs in zip(sim.trades, closed):
        p = theirs.round_trip
        assert (ours[0], ours[1], ours[2], ours[3], ours[4], ours[7]) == (
            p.entry_time_ms, p.entry_price, p.bought, p.entry_fee, theirs.exit_time_ms, theirs.reason)
        assert ours[5] == pytest.approx(theirs.exit_price, rel=1e-14) and ours[6] == p.exit_fee
