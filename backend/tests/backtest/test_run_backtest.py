"""run_backtest: trades against the tests' own crossover reference, the result's shape and JSON
safety, metrics conventions, date ranges with warm-up, and every bad input as a BacktestError."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from bt_helpers import frame
from support.reference import expected_trades, load_candles

from tradefleet.backtest import BacktestError, run_backtest
from tradefleet.backtest.metrics import compute_metrics
from tradefleet.strategy import IntParam, ParamError, Strategy
from tradefleet.strategy.guard import compute_signals


def test_sma_cross_trades_equal_the_reference_crossovers(strategies, btc_1m):
    sma = strategies.get("sma_cross")
    fast, slow = 7, 25
    result = run_backtest(sma, btc_1m, params={"fast": fast, "slow": slow}, stake=10_000.0, fee=0.001,
                          amount_step=0.00001)
    data = load_candles("BTCUSDT", "1m")
    ref = expected_trades(data, first_ms=int(data["time"][0]), last_ms=int(data["time"][-1]), fast=fast, slow=slow,
                          stake=10_000.0, fee=0.001, step=0.00001)
    closed = [t for t in result.trades if not t["is_open"]]
    assert len(closed) == len(ref) > 500
    for ours, theirs in zip(closed, ref):
        assert (ours["entry_time_ms"], ours["exit_time_ms"]) == (theirs.entry_time_ms, theirs.exit_time_ms)
        assert (ours["entry_price"], ours["exit_price"]) == (theirs.entry_price, theirs.exit_price)
        assert ours["amount"] == pytest.approx(theirs.amount, rel=1e-12)
        assert ours["pnl"] == pytest.approx(theirs.pnl, rel=1e-9, abs=1e-9)
    assert result.signals["enter_long"] >= len(ref)


def test_result_shape_and_json_safety(strategies, btc_1h):
    result = run_backtest(strategies.get("rsi_reversion"), btc_1h, params={"period": 14}, lookahead=True)
    out = json.loads(json.dumps(result.to_dict(equity=True), allow_nan=False))
    assert set(out) >= {"metrics", "trades", "lookahead", "equity", "signals"}
    assert set(out["metrics"]) == {"total_return_pct", "cagr_pct", "max_drawdown_pct", "sharpe", "sortino",
                                   "win_rate_pct", "profit_factor", "trades", "exposure_pct",
                                   "avg_trade_duration_s", "final_equity", "fees_paid"}
    assert out["lookahead"]["flagged"] is False
    trade = out["trades"][0]
    assert trade["entry_time"].endswith("Z") and trade["exit_time"] > trade["entry_time"]
    assert pd.Timestamp(trade["entry_time"]).value // 10**6 == trade["entry_time_ms"]
    m = result.metrics
    closed = [t for t in result.trades if not t["is_open"]]
    assert m["trades"] == len(closed)
    assert m["final_equity"] == result.equity[-1]
    assert m["fees_paid"] == pytest.approx(sum(t["fees"] for t in result.trades))
    assert m["total_return_pct"] == pytest.approx((result.equity[-1] / 10_000 - 1) * 100)
    assert len(result.equity) == len(result.equity_time_ms) == len(btc_1h)
    realised = sum(t["pnl"] for t in closed)
    open_pnl = sum(t["pnl"] for t in result.trades if t["is_open"])
    assert 10_000 + realised + open_pnl == pytest.approx(result.equity[-1])


def test_metrics_conventions():
    hour = 3_600_000
    equity = np.array([100.0, 110.0, 99.0, 121.0, 121.0])
    times = np.arange(5) * hour
    closed = [{"pnl": 10.0, "entry_time_ms": 0, "exit_time_ms": 2 * hour},
              {"pnl": -4.0, "entry_time_ms": 2 * hour, "exit_time_ms": 3 * hour},
              {"pnl": 6.0, "entry_time_ms": 3 * hour, "exit_time_ms": 4 * hour}]
    m = compute_metrics(stake=100.0, equity=equity, time_ms=times, timeframe_s=3600, closed=closed,
                        position=np.array([0, 1, 1, 0, 0.0]), fees_paid=1.5)
    r = equity[1:] / equity[:-1] - 1
    periods = 365 * 24
    assert m["total_return_pct"] == pytest.approx(21.0)
    assert m["cagr_pct"] == pytest.approx((1.21 ** (1 / (4 * hour / (365.25 * 86_400_000))) - 1) * 100)
    assert m["max_drawdown_pct"] == pytest.approx(10.0)  # 110 -> 99
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(periods))
    assert m["sortino"] == pytest.approx(r.mean() / math.sqrt(np.mean(np.minimum(r, 0) ** 2)) * math.sqrt(periods))
    assert m["win_rate_pct"] == pytest.approx(200 / 3)
    assert m["profit_factor"] == pytest.approx(16 / 4)
    assert m["exposure_pct"] == pytest.approx(40.0)
    assert m["avg_trade_duration_s"] == pytest.approx((7200 + 3600 + 3600) / 3)
    assert (m["trades"], m["final_equity"], m["fees_paid"]) == (3, 121.0, 1.5)


def test_metrics_without_trades_or_losses_are_null_not_nan():
    m = compute_metrics(stake=100.0, equity=np.full(10, 100.0), time_ms=np.arange(10) * 60_000, timeframe_s=60,
                        closed=[], position=np.zeros(10))
    assert m["sharpe"] is None and m["sortino"] is None and m["win_rate_pct"] is None
    assert m["profit_factor"] is None and m["avg_trade_duration_s"] is None
    assert m["max_drawdown_pct"] == 0.0 and m["total_return_pct"] == 0.0 and m["trades"] == 0
    json.dumps(m, allow_nan=False)
    m = compute_metrics(stake=100.0, equity=np.array([100.0, 101, 102]), time_ms=np.arange(3) * 60_000,
                        timeframe_s=60, closed=[{"pnl": 2.0, "entry_time_ms": 0, "exit_time_ms": 60_000}])
    assert m["profit_factor"] is None and m["win_rate_pct"] == 100.0


# ------------------------------------------------------------------ protective exits through the API
class Always(Strategy):
    """Enters on every candle after the startup period; never exits by signal."""

    startup_candles = 1

    def signals(self, candles):
        return candles.assign(enter_long=True, exit_long=False)


def test_stoploss_take_profit_and_trailing_are_read_from_the_strategy(btc_1h):
    stop = type("Stop", (Always,), {"stoploss": -0.01})
    tp = type("TakeProfit", (Always,), {"take_profit": 0.01})
    trail = type("Trail", (Always,), {"trailing_stop": 0.01})
    for klass, reason in ((stop, "stoploss"), (tp, "take_profit"), (trail, "trailing_stop")):
        result = run_backtest(klass, btc_1h.iloc[:2000])
        reasons = {t["exit_reason"] for t in result.trades if not t["is_open"]}
        assert reasons == {reason}, klass.__name__
    result = run_backtest(stop, btc_1h.iloc[:2000])
    for t in result.trades:
        if not t["is_open"]:
            assert t["exit_price"] <= t["entry_price"] * 0.99 + 1e-9


def test_open_position_at_the_end_is_listed_and_valued_at_the_last_close(btc_1h):
    result = run_backtest(Always, btc_1h.iloc[:100])
    (trade,) = result.trades
    assert trade["is_open"] and trade["exit_time"] is None and trade["exit_reason"] is None
    last = btc_1h["close"].iat[99]
    assert result.metrics["final_equity"] == pytest.approx(10_000 - trade["amount"] * trade["entry_price"]
                                                           - trade["entry_fee"] + trade["amount"] * last)
    assert result.metrics["trades"] == 0 and result.metrics["exposure_pct"] == pytest.approx(98.0)


# ------------------------------------------------------------------ date ranges
def test_start_and_end_select_candles_and_use_earlier_ones_for_startup(strategies, btc_1h):
    sma = strategies.get("sma_cross")
    part = run_backtest(sma, btc_1h, start="2024-03-01T00:00:00Z", end="2024-04-01")
    first, last = pd.Timestamp("2024-03-01", tz="UTC"), pd.Timestamp("2024-03-31T23:00", tz="UTC")
    assert part.equity_time_ms[0] == first.value // 10**6 and part.equity_time_ms[-1] == last.value // 10**6
    assert len(part.equity) == 31 * 24
    # The startup period comes from the candles before the start: the signals in range are the full
    # history's, including a crossover on the first candle of the range if there is one.
    full = compute_signals(sma(sma.validate_params({})), btc_1h, timeout_s=60)
    in_range = full.loc[first:last]
    assert part.signals == {c: int(in_range[c].sum()) for c in ("enter_long", "exit_long")}
    assert all(first.value // 10**6 < t["entry_time_ms"] for t in part.trades)
    assert part.to_dict()["start"] == "2024-03-01T00:00:00Z" and part.to_dict()["end"] == "2024-04-01T00:00:00Z"


@pytest.mark.parametrize("kwargs,message", [
    ({"start": "2024-05-01", "end": "2024-04-01"}, "empty date range"),
    ({"start": "2024-05-01", "end": "2024-05-01"}, "empty date range"),
    ({"start": "2023-01-01"}, "start 2023-01-01T00:00:00Z is outside the data"),
    ({"start": "2030-01-01"}, "outside the data"),
    ({"end": "2030-01-01"}, "end 2030-01-01T00:00:00Z is outside the data"),
    ({"end": "2023-12-01"}, "outside the data"),
    ({"start": "yesterday-ish"}, "start: cannot read"),
    ({"timeframe": "5m"}, "timeframe 5m does not match the candles, which are 1h apart"),
    ({"timeframe": "fortnight"}, "unknown timeframe"),
])
def test_bad_date_ranges_and_timeframes(strategies, btc_1h, kwargs, message):
    with pytest.raises(BacktestError, match=message.replace("(", r"\(")):
        run_backtest(strategies.get("sma_cross"), btc_1h, **kwargs)


def test_a_range_with_no_candles_inside_a_gap():
    candles = frame([(1, 1, 1, 1)] * 10)
    candles = pd.concat([candles, frame([(1, 1, 1, 1)] * 10, start="2024-02-01")])
    with pytest.raises(BacktestError, match="no candles between"):
        run_backtest(Always, candles, timeframe="1h", start="2024-01-05", end="2024-01-20")


def test_too_few_candles_for_the_startup_period(strategies, btc_1h):
    with pytest.raises(BacktestError, match="too few candles: sma_cross needs 30 startup candles"):
        run_backtest(strategies.get("sma_cross"), btc_1h.iloc[:31])
    with pytest.raises(BacktestError, match="too few candles"):
        run_backtest(strategies.get("sma_cross"), btc_1h, start=btc_1h.index[0], end=btc_1h.index[20])


def test_invalid_parameters_raise_param_error(strategies, btc_1h):
    with pytest.raises(ParamError) as info:
        run_backtest(strategies.get("sma_cross"), btc_1h, params={"fast": 50, "slow": 20})
    assert info.value.field == "fast"


# ------------------------------------------------------------------ bad strategies
class _Base(Strategy):
    startup_candles = 3
    period = IntParam(3, low=1, high=10)


def _strategy(body):
    return type("Bad", (_Base,), {"signals": body, "name": "bad"})


@pytest.mark.parametrize("body,message", [
    (lambda self, c: c.iloc[:-1].assign(enter_long=False, exit_long=False), r"returned \d+ rows for \d+ candles"),
    (lambda self, c: c.assign(enter_long=False), "no column exit_long"),
    (lambda self, c: [1, 2, 3], "returned list, expected a DataFrame"),
    (lambda self, c: 1 / 0, "raised ZeroDivisionError"),
    (lambda self, c: c.assign(enter_long=c["close"].rolling(5).mean() > 0, exit_long=pd.Series(
        [np.nan if i == 7 else False for i in range(len(c))], index=c.index, dtype=object)),
     "gave NaN in exit_long at 2024-01-01 07:00:00"),
    (lambda self, c: c.assign(enter_long=pd.array([None if i == 8 else True for i in range(len(c))],
                                                  dtype="boolean"), exit_long=False),
     "gave NaN in enter_long at 2024-01-01 08:00:00"),
    (lambda self, c: c.assign(enter_long="yes", exit_long=False), "gave 'yes' in enter_long"),
])
def test_bad_strategies_raise_a_clear_backtest_error(body, message):
    candles = frame([(100, 101, 99, 100)] * 20)
    with pytest.raises(BacktestError, match=message):
        run_backtest(_strategy(body), candles)


def test_nan_inside_the_startup_period_is_no_signal():
    def body(self, c):
        sma = c["close"].rolling(4).mean()  # NaN in rows 0..2, inside the startup period (3 candles)
        return c.assign(enter_long=(sma > 0).where(sma.notna()), exit_long=(sma < 0).where(sma.notna()))

    result = run_backtest(_strategy(body), frame([(100, 101, 99, 100)] * 20))
    assert result.signals == {"enter_long": 17, "exit_long": 0}
    assert result.trades[0]["entry_time_ms"] == result.equity_time_ms[4]


def test_a_float_signal_column_is_rejected_as_the_live_engine_does():
    body = lambda self, c: c.assign(enter_long=1.0, exit_long=False)  # noqa: E731
    with pytest.raises(BacktestError, match="gave 1.0 in enter_long at 2024-01-01 03:00:00.*expected a boolean"):
        run_backtest(_strategy(body), frame([(100, 101, 99, 100)] * 20))


def test_integer_signals_are_accepted():
    body = lambda self, c: c.assign(enter_long=(c["close"] > 0).astype(int), exit_long=0)  # noqa: E731
    result = run_backtest(_strategy(body), frame([(100, 101, 99, 100)] * 20))
    assert result.trades[0]["is_open"]


@pytest.mark.parametrize("mutate,message", [
    (lambda c: c.drop(columns=["low"]), "missing column"),
    (lambda c: c.iloc[::-1], "earlier than the previous row"),
    (lambda c: pd.concat([c.iloc[:5], c.iloc[4:]]), "repeats the previous timestamp"),
    (lambda c: c.tz_localize(None), "timezone-aware"),
    (lambda c: c.assign(close=np.where(np.arange(len(c)) == 3, np.nan, c["close"])), "row 3: close is NaN"),
])
def test_bad_candle_frames(mutate, message):
    with pytest.raises(BacktestError, match=message):
        run_backtest(Always, mutate(frame([(100, 101, 99, 100)] * 20)))


def test_stateful_path_equals_the_vectorised_path(btc_1h):
    """A no-op on_candle hook sends the same signals through the per-candle CandleAccount loop: the
    trades and every equity value must equal the vectorised engine's. (The two cores of the engine are
    compared on in-process subclasses of the shipped class; the platform itself only runs strategy files
    in sandboxed runners.)"""
    import importlib.util

    from tradefleet.config import REPO_ROOT

    spec = importlib.util.spec_from_file_location("sma_cross_under_test", REPO_ROOT / "strategies" / "sma_cross.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sma = module.SmaCross
    hooked = type("SmaCrossHooked", (sma,), {"on_candle": lambda self, ctx: None, "name": "sma_cross_hooked",
                                             "stoploss": -0.02, "trailing_stop": 0.03, "take_profit": 0.05})
    plain = type("SmaCrossPlain", (sma,), {"name": "sma_cross_plain", "stoploss": -0.02, "trailing_stop": 0.03,
                                           "take_profit": 0.05})
    a = run_backtest(plain, btc_1h, params={"fast": 8, "slow": 21}, amount_step=0.00001)
    b = run_backtest(hooked, btc_1h, params={"fast": 8, "slow": 21}, amount_step=0.00001)
    assert len(a.trades) > 50
    assert a.trades == b.trades
    assert np.array_equal(a.equity, b.equity)
    assert {t["exit_reason"] for t in a.trades} >= {"exit_long", "stoploss", "take_profit"}


class Dca(Strategy):
    """Buys 1,000 quote on each of the first three candles, sells everything on the tenth."""

    name = "dca_test"

    def on_candle(self, ctx):
        n = ctx.state.get("n", 0)
        ctx.state["n"] = n + 1
        if n < 3:
            ctx.buy(1000)
        elif n == 9:
            ctx.sell()


def test_a_stateful_strategy_averages_in_and_keeps_state(btc_1h):
    result = run_backtest(Dca, btc_1h.iloc[:50], fee=0.001)
    closed = [t for t in result.trades if not t["is_open"]]
    assert len(closed) == 1
    trade = closed[0]
    opens = btc_1h["open"].to_numpy()
    amounts = [1000 / (opens[i] * 1.001) for i in (1, 2, 3)]
    assert trade["amount"] == pytest.approx(sum(amounts), rel=1e-12)
    assert trade["entry_price"] == pytest.approx(sum(a * opens[i] for a, i in zip(amounts, (1, 2, 3))) / sum(amounts),
                                                 rel=1e-12)
    assert trade["exit_price"] == opens[10] and trade["entry_time_ms"] == int(btc_1h["time_ms"].iat[1])
    assert trade["pnl"] == pytest.approx(sum(amounts) * opens[10] * 0.999 - 3000, rel=1e-9)


def test_a_stateful_strategy_that_fails_is_a_clear_error(btc_1h):
    bad_state = type("BadState", (Strategy,), {"name": "bad_state",
                                               "on_candle": lambda self, ctx: ctx.state.update(x=object())})
    with pytest.raises(BacktestError, match="state must hold JSON values only"):
        run_backtest(bad_state, btc_1h.iloc[:30])
    raises = type("Raises", (Strategy,), {"name": "raises", "on_candle": lambda self, ctx: 1 / 0})
    with pytest.raises(BacktestError, match="ZeroDivisionError"):
        run_backtest(raises, btc_1h.iloc[:30])
