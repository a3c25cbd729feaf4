"""Hostile: opens a TCP connection to PostgreSQL on 127.0.0.1:5432 and sends a startup message."""

import socket

from tradefleet.strategy import Strategy


class ConnectPostgres(Strategy):
    """Raises whatever the connection attempt raised; reports the server's first bytes if it answered."""

    timeframe = "1m"

    def signals(self, candles):
        conn = socket.create_connection(("127.0.0.1", 5432), timeout=0.5)
        conn.sendall(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")  # SSLRequest
        raise RuntimeError(f"GOT a PostgreSQL answer {conn.recv(16)!r}")
