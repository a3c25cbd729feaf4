"""Deliberately broken: a strategy that never implements signals()."""

from tradefleet.strategy import IntParam, Strategy


class NoSignals(Strategy):
    """Forgot to write signals()."""

    period = IntParam(10, low=2, high=50)
