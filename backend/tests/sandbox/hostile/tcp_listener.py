"""Hostile: connects to a TCP listener the test runs on 127.0.0.1 (its port given as a parameter)."""

import socket

from tradefleet.strategy import IntParam, Strategy


class TcpListener(Strategy):
    """Raises whatever the connection attempt raised."""

    timeframe = "1m"
    port = IntParam(1, low=1, high=65535)

    def signals(self, candles):
        conn = socket.create_connection(("127.0.0.1", self.port), timeout=0.5)
        conn.sendall(b"escaped")
        raise RuntimeError("GOT a connection to the test's listener")
