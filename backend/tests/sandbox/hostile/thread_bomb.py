"""Hostile: starts threads that busy-loop forever, then returns at once (they would go on computing
after the reply, outside the request's budget and on every core)."""

import threading

from tradefleet.strategy import Strategy


def spin():
    while True:
        pass


class ThreadBomb(Strategy):
    """Raises what starting a thread raised; else reports how many it started."""

    timeframe = "1m"

    def signals(self, candles):
        for _ in range(64):
            threading.Thread(target=spin, daemon=True).start()
        raise RuntimeError(f"GOT {threading.active_count()} threads")
