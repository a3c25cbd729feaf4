"""Backtests: any strategy over stored candles, with the paper/live fill model.

- :func:`run_backtest` → :class:`BacktestResult` (metrics, trades, equity curve); the fill model is
  written down in :mod:`tradefleet.backtest.engine`, the metrics' conventions in
  :mod:`tradefleet.backtest.metrics`.
- :func:`load_csv`: the candle files of ``data/ohlcv`` (gzip or not).
- :func:`check_lookahead`: flags strategies whose past signals change when the future is cut off.

Every problem (bad candles or dates, a failing strategy) is a :class:`BacktestError`.
"""

from tradefleet.backtest.csvdata import check_candles, load_csv
from tradefleet.backtest.engine import run_backtest
from tradefleet.backtest.results import BacktestResult, Simulation
from tradefleet.backtest.vector import simulate
from tradefleet.backtest.errors import BacktestError
from tradefleet.backtest.lookahead import LookaheadReport, check_lookahead

__all__ = [
    "BacktestError",
    "BacktestResult",
    "LookaheadReport",
    "Simulation",
    "check_candles",
    "check_lookahead",
    "load_csv",
    "run_backtest",
    "simulate",
]
