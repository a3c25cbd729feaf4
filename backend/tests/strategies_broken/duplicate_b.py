"""One of two files defining the strategy name `duplicate_name` (this one sorts second)."""

from tradefleet.strategy import Strategy


class DuplicateB(Strategy):
    """The second definition of duplicate_name."""

    name = "duplicate_name"

    def signals(self, candles):
        return candles.assign(enter_long=True, exit_long=False)
