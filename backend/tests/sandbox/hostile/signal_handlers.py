"""Hostile: installs a handler on every signal that has one, blocks every signal it can, then sleeps
forever: nothing sent to it should end it."""

import signal
import time

from tradefleet.strategy import Strategy


class SignalHandlers(Strategy):
    """Never returns."""

    timeframe = "1m"

    def signals(self, candles):
        for sig in signal.valid_signals():
            try:
                signal.signal(sig, signal.SIG_IGN)
            except (OSError, ValueError, RuntimeError):
                pass  # SIGKILL and SIGSTOP cannot be caught
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        while True:
            time.sleep(1)
