"""Deribit: the v2 JSON-RPC websocket (trades, quote, book with change-id chains, heartbeats)."""
