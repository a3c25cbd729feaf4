"""Hostile: allocates 10 GB and touches it."""

from tradefleet.strategy import Strategy


class Allocate10Gb(Strategy):
    """Raises MemoryError (or reports the size it got)."""

    timeframe = "1m"

    def signals(self, candles):
        block = bytearray(10 * 1024**3)
        raise RuntimeError(f"GOT {len(block)} bytes")
