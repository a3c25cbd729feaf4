"""One reading of signal values: the live engine's :class:`SignalReader` and the backtest's
:func:`signal_arrays` accept the same values and refuse the others with the same message."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tradefleet.backtest.engine import signal_arrays
from tradefleet.backtest.errors import BacktestError
from tradefleet.strategy.guard import SignalReader, StrategyError, signal_bool

INDEX = pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC")


@pytest.mark.parametrize("value, expected", [
    (True, True), (False, False), (np.bool_(True), True), (0, False), (1, True), (np.int64(1), True),
    (2, None), (1.0, None), ("1", None), (None, None), (float("nan"), None), (pd.NA, None),
])
def test_signal_bool(value, expected):
    assert signal_bool(value) is expected


@pytest.mark.parametrize("bad, message", [
    (float("nan"), "s.signals() gave NaN in enter_long at 2024-01-01 01:00:00+00:00"),
    (None, "s.signals() gave NaN in enter_long at 2024-01-01 01:00:00+00:00"),
    (np.float64(1.0), "s.signals() gave 1.0 in enter_long at 2024-01-01 01:00:00+00:00, expected a boolean"),
    ("yes", "s.signals() gave 'yes' in enter_long at 2024-01-01 01:00:00+00:00, expected a boolean"),
])
def test_live_reader_and_backtest_say_the_same(bad, message):
    frame = pd.DataFrame({"enter_long": pd.Series([False, bad, True], index=INDEX, dtype=object),
                          "exit_long": [False, False, False]}, index=INDEX)
    with pytest.raises(StrategyError) as live:
        SignalReader(frame, "s").at(1, "enter_long")
    with pytest.raises(BacktestError) as backtest:
        signal_arrays(frame, 0, "s")
    assert str(live.value) == str(backtest.value) == message
    assert SignalReader(frame, "s").at(2, "enter_long") is True
