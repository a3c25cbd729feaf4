"""Hostile: catches every way a time-out could reach it (SIGALRM, SIGTERM, SIGINT, SIGXCPU handlers,
``except BaseException`` around a sleep loop) and goes on."""

import signal
import time

from tradefleet.strategy import Strategy


class CatchTimeout(Strategy):
    """Never returns, whatever it is sent."""

    timeframe = "1m"

    def signals(self, candles):
        for sig in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT, signal.SIGXCPU, signal.SIGHUP):
            signal.signal(sig, lambda *_: None)
        while True:
            try:
                while True:
                    time.sleep(0.05)
            except BaseException:  # noqa: BLE001, S110 - the point of the attack
                continue
