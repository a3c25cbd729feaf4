"""Hostile, at import time: imports the platform's vault at the top of the file (no fallback)."""

from tradefleet.security.vault import unlock_decryption  # noqa: F401

from tradefleet.strategy import Strategy


class ImportFails(Strategy):
    """Never loads: the vault is not there to import."""

    timeframe = "1m"

    def signals(self, candles):
        return candles.assign(enter_long=False, exit_long=False)
