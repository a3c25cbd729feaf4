"""A valid strategy whose signals() always fails: for the engine's error handling tests."""

from tradefleet.strategy import Strategy


class RaisesInSignals(Strategy):
    """Loads fine; every call to signals() raises RuntimeError("deliberate failure")."""

    name = "raises_in_signals"
    timeframe = "1m"
    startup_candles = 2

    def signals(self, candles):
        raise RuntimeError("deliberate failure")
