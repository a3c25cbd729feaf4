"""Hostile, at import time: writes a frame whose JSON header nests 400,000 arrays deep (under the
header cap) on the reply pipe before the runner says ready."""

import os
import stat
import struct

from tradefleet.strategy import Strategy


def reply_fd():
    import fcntl  # noqa: PLC0415

    for fd in range(3, 64):
        try:
            mode, flags = os.fstat(fd).st_mode, fcntl.fcntl(fd, fcntl.F_GETFL)
        except OSError:
            continue
        if stat.S_ISFIFO(mode) and flags & os.O_ACCMODE == os.O_WRONLY:
            return fd
    raise RuntimeError("no reply pipe found")


_body = b"[" * 400_000 + b"]" * 400_000
os.write(reply_fd(), struct.pack(">I", len(_body)) + _body)


class NestedJsonFrame(Strategy):
    """Would behave, if the parent got past its first frame."""

    timeframe = "1m"

    def signals(self, candles):
        return candles.assign(enter_long=False, exit_long=False)
