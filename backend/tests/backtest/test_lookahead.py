"""The look-ahead check flags a strategy that peeks at the next candle and passes honest ones."""

from __future__ import annotations

import pytest

from tradefleet.backtest import BacktestError, check_lookahead, run_backtest
from tradefleet.strategy import IntParam, Strategy


class PeeksAtNextClose(Strategy):
    """Deliberately cheating: buys when the NEXT close is higher (``close.shift(-1)``)."""

    startup_candles = 1

    def signals(self, candles):
        nxt = candles["close"].shift(-1)
        return candles.assign(enter_long=(nxt > candles["close"]).fillna(False),
                              exit_long=(nxt < candles["close"]).fillna(False))


class NormalisesByTheWholeSeries(Strategy):
    """Subtler cheat: compares the close with the maximum of the whole history, future included."""

    startup_candles = 5
    level = IntParam(95, low=1, high=99)

    def signals(self, candles):
        ratio = candles["close"] / candles["close"].max() * 100
        return candles.assign(enter_long=ratio < self.level - 20, exit_long=ratio > self.level)


class RaisesOnShortWindows(Strategy):
    startup_candles = 1

    def signals(self, candles):
        if len(candles) < 500:
            raise RuntimeError("needs 500 candles")
        return candles.assign(enter_long=False, exit_long=False)


def test_a_strategy_using_the_next_close_is_flagged(btc_1h):
    report = check_lookahead(PeeksAtNextClose, btc_1h, {}, samples=20, seed=1)
    assert report.flagged
    time, column, full, truncated = report.mismatches[0]
    assert column in ("enter_long", "exit_long") and full is not truncated
    assert len(report.checked) == 20
    assert report.to_dict()["mismatches"][0]["time"] == time


def test_a_strategy_normalising_by_the_future_is_flagged(btc_1h):
    assert check_lookahead(NormalisesByTheWholeSeries, btc_1h, {}, samples=20).flagged


@pytest.mark.parametrize("name,params", [("sma_cross", {"fast": 10, "slow": 30}), ("rsi_reversion", {})])
def test_honest_strategies_pass(strategies, btc_1h, name, params):
    report = check_lookahead(strategies.get(name), btc_1h, params, samples=30, seed=3)
    assert not report.flagged and report.mismatches == [] and len(report.checked) == 30


def test_the_backtest_result_carries_the_flag(btc_1h):
    result = run_backtest(PeeksAtNextClose, btc_1h.iloc[:1000], lookahead=True)
    assert result.lookahead.flagged and result.to_dict()["lookahead"]["flagged"] is True
    assert result.metrics["total_return_pct"] > 50  # what a cheat looks like: too good to be true
    assert run_backtest(PeeksAtNextClose, btc_1h.iloc[:1000]).lookahead is None


def test_sampling_is_deterministic_and_bounded(btc_1h):
    a = check_lookahead(PeeksAtNextClose, btc_1h.iloc[:50], {}, samples=100, seed=5)
    b = check_lookahead(PeeksAtNextClose, btc_1h.iloc[:50], {}, samples=100, seed=5)
    assert a.checked == b.checked and len(a.checked) == 48  # rows 1..48: after startup, before the last


def test_a_strategy_failing_on_a_truncated_window_is_a_backtest_error(btc_1h):
    with pytest.raises(BacktestError, match="look-ahead check, window ending .*needs 500 candles"):
        check_lookahead(RaisesOnShortWindows, btc_1h.iloc[:1000], {}, samples=5)
