"""A test-only strategy that trades on every candle: long on candles opening at an even minute, flat
on odd ones (so a live run alternates buy, sell, buy...). Used by the live and chaos tests."""

from tradefleet.strategy import Strategy


class Flip(Strategy):
    """Buy on even minutes, sell on odd minutes (tests only)."""

    timeframe = "1m"
    position_size = 0.5

    @property
    def startup_candles(self) -> int:
        return 1

    def signals(self, candles):
        even = (candles["time_ms"] // 60_000) % 2 == 0
        return candles.assign(enter_long=even, exit_long=~even)
