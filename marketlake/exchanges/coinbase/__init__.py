"""Coinbase: the Advanced Trade websocket (market_trades, ticker, level2)."""
