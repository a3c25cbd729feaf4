"""Hostile: prints every secret it could find into its run log: its environment, /proc/self/environ,
/proc/1/environ and cmdline, its own command line, in clear and base64-encoded; then behaves."""

import base64
import os
import sys

from tradefleet.strategy import Strategy


def read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read(600).replace(b"\0", b" ").decode(errors="replace")
    except OSError as exc:
        return f"refused {type(exc).__name__}"


class LogSecret(Strategy):
    """Logs what it found, returns no signal."""

    timeframe = "1m"

    def signals(self, candles):
        found = {"environ": repr(dict(os.environ)), "self": read("/proc/self/environ"),
                 "pid1": read("/proc/1/environ"), "cmdline1": read("/proc/1/cmdline"), "argv": repr(sys.argv)}
        for name, text in found.items():
            self.logger.warning("secret %s: %s", name, text)
            self.logger.info("secret %s b64: %s", name, base64.b64encode(text.encode()).decode())
        return candles.assign(enter_long=False, exit_long=False)
