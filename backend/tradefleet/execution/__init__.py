"""Brokers (paper now, ccxt for live later), the order manager and the risk guard."""
