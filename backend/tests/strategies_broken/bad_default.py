"""Deliberately broken: a parameter default outside its own range."""

from tradefleet.strategy import IntParam, Strategy


class BadDefault(Strategy):
    """The default of `period` (500) is above its maximum (100)."""

    period = IntParam(500, low=2, high=100)

    def signals(self, candles):
        return candles.assign(enter_long=False, exit_long=False)
