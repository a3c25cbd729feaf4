"""Tradefleet: a self-hosted, multi-user platform that runs trading strategies on crypto exchanges."""

__version__ = "0.1.0"
