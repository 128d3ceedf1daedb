"""OKX: the v5 public websocket (trades, bbo-tbt, books with sequence ids and checksums)."""
