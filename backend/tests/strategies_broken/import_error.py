"""Deliberately broken: imports a module that does not exist."""

import tradefleet_no_such_module  # noqa: F401

from tradefleet.strategy import Strategy


class ImportErrorStrategy(Strategy):
    def signals(self, candles):
        return candles.assign(enter_long=False, exit_long=False)
