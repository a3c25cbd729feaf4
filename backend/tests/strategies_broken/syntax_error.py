"""Deliberately broken: not valid Python (the registry must report it, not crash)."""

from tradefleet.strategy import Strategy


class SyntaxError_(Strategy):
    def signals(self, candles)
        return candles
