"""Candles and tickers: fetched through ccxt, cached, stored for backtests."""
