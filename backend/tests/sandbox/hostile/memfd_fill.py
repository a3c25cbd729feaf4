"""Hostile: keeps memory in anonymous memfd files (written, not mapped): memory outside the
address-space limit."""

import os

from tradefleet.strategy import Strategy


class MemfdFill(Strategy):
    """Raises with how much it kept."""

    timeframe = "1m"

    def signals(self, candles):
        kept = []
        chunk = b"x" * (1 << 20)
        for _ in range(40):
            fd = os.memfd_create("hoard")
            for _ in range(16):
                os.write(fd, chunk)
            kept.append(fd)
        raise RuntimeError(f"GOT {len(kept) * 16} MB in memfd files")
