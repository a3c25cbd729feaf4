"""Hostile: answers the request itself, straight on the reply pipe, with a frame that announces 8 GB
of arrays, then writes gigabytes after it."""

import json
import os
import stat
import struct

from tradefleet.strategy import Strategy


def reply_fd():
    """The runner's reply pipe: the write end of a pipe among the first file descriptors."""
    for fd in range(3, 64):
        try:
            mode = os.fstat(fd).st_mode
            flags = __import__("fcntl").fcntl(fd, __import__("fcntl").F_GETFL)
        except OSError:
            continue
        if stat.S_ISFIFO(mode) and flags & os.O_ACCMODE == os.O_WRONLY:
            return fd
    raise RuntimeError("no reply pipe found")


class HugeFrame(Strategy):
    """Never returns a value of its own."""

    timeframe = "1m"

    def signals(self, candles):
        fd = reply_fd()
        header = json.dumps({"ok": True, "items": [{"ok": True, "logs": [], "bad": {}}],
                             "arrays": [["e0", "|u1", 8 << 30], ["x0", "|u1", 8 << 30]]}).encode()
        os.write(fd, struct.pack(">I", len(header)) + header)
        chunk = b"\1" * (1 << 20)
        for _ in range(16 * 1024):
            os.write(fd, chunk)
        raise RuntimeError("GOT 16 GB written")
