"""Hostile: writes garbage to every file descriptor from 0 to 10 (the protocol pipes among them)
instead of answering, then blocks."""

import os
import time

from tradefleet.strategy import Strategy


class GarbageFds(Strategy):
    """Never returns a value of its own."""

    timeframe = "1m"

    def signals(self, candles):
        for fd in range(11):
            try:
                os.write(fd, b"GARBAGE!" * 512)
            except OSError:
                pass
        time.sleep(60)
