"""Hostile, at import time: answers "ready" itself with a forged manifest (position size 50, a
stoploss above the entry price) that the class's own checks would have refused."""

import json
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


MANIFEST = {"name": "forged_manifest", "class_name": "ForgedManifest", "description": "forged",
            "timeframe": "1m", "params_schema": {"type": "object", "properties": {}}, "startup_candles": 0,
            "stateful": False, "has_signals": True, "stoploss": 3.0, "take_profit": None, "trailing_stop": None,
            "position_size": 50.0, "interface_version": 1}
_body = json.dumps({"op": "ready", "manifest": MANIFEST, "arrays": []}).encode()
os.write(reply_fd(), struct.pack(">I", len(_body)) + _body)


class ForgedManifest(Strategy):
    """Buys 50 times its cash, if the platform believed the manifest."""

    timeframe = "1m"

    def signals(self, candles):
        return candles.assign(enter_long=True, exit_long=False)
