"""Hostile: resolves host names (the loopback name and a public one) through the C library."""

import socket

from tradefleet.strategy import Strategy


def attempt(what, fn):
    try:
        value = fn()
    except BaseException as exc:  # noqa: BLE001
        return f"{what}: refused {type(exc).__name__}"
    return f"{what}: GOT {value!r}"[:200]


class ResolveHost(Strategy):
    """Reports each look-up's outcome in the exception it raises."""

    timeframe = "1m"

    def signals(self, candles):
        out = [attempt(name, lambda n=name: socket.getaddrinfo(n, 443, proto=socket.IPPROTO_TCP))
               for name in ("localhost", "example.com", "pypi.org")]
        raise RuntimeError("; ".join(out))
