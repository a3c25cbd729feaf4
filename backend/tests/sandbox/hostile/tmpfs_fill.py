"""Hostile: fills the sandbox's in-memory file systems (the root, /dev/shm, /dev, /sandbox, the hidden
site-packages, /tmp, its HOME) with 64 MB each: memory the address-space limit does not count."""

import os
import sys

from tradefleet.strategy import Strategy


def fill(folder, megabytes=64):
    chunk = b"x" * (1 << 20)
    written = 0
    for i in range(megabytes // 8):
        with open(os.path.join(folder, f"fill-{i}"), "wb") as handle:
            for _ in range(8):
                handle.write(chunk)
                written += 1
    return written


class TmpfsFill(Strategy):
    """Reports how many MB each folder took in the exception it raises."""

    timeframe = "1m"

    def signals(self, candles):
        site = os.path.join(os.path.dirname(os.__file__), "site-packages")
        out = []
        for folder in ("/", "/dev/shm", "/dev", "/sandbox", site, "/tmp", os.environ.get("HOME", "/")):
            try:
                out.append(f"{folder}: GOT {fill(folder)} MB")
            except OSError as exc:
                out.append(f"{folder}: refused {exc.strerror}")
        raise RuntimeError("; ".join(out) + f" ({sys.version_info[:2]})")
