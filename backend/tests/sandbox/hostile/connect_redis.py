"""Hostile: opens a TCP connection to Redis on 127.0.0.1:6379 and lists its keys."""

import socket

from tradefleet.strategy import Strategy


class ConnectRedis(Strategy):
    """Raises whatever the connection attempt raised; reports Redis's answer if it answered."""

    timeframe = "1m"

    def signals(self, candles):
        conn = socket.create_connection(("127.0.0.1", 6379), timeout=0.5)
        conn.sendall(b"KEYS *\r\n")
        raise RuntimeError(f"GOT a Redis answer {conn.recv(200)!r}")
