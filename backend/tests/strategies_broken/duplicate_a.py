"""One of two files defining the strategy name `duplicate_name` (this one sorts first)."""

from tradefleet.strategy import Strategy


class DuplicateA(Strategy):
    """The first definition of duplicate_name."""

    name = "duplicate_name"

    def signals(self, candles):
        return candles.assign(enter_long=False, exit_long=False)
