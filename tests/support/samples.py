"""Where the real exchange data lives: `tests/data/real`, copied byte for byte with its
PROVENANCE.md, so that a clone of the repository tests against real captures on its own."""

from __future__ import annotations

from pathlib import Path

#: Real exchange data kept in the repository (see its PROVENANCE.md and README.md).
REAL_SAMPLES = Path(__file__).resolve().parents[1] / "data" / "real"
BINANCE_VISION = REAL_SAMPLES / "binance_vision"
BINANCE_REST = REAL_SAMPLES / "binance_rest"
#: The first rows of two real archive days: milliseconds (2024) and microseconds (2025).
TRADES_CSV_2024 = BINANCE_VISION / "BTCUSDT-trades-2024-12-31.head.csv"
TRADES_CSV_2025 = BINANCE_VISION / "BTCUSDT-trades-2025-01-01.head.csv"

BINANCE_WS = REAL_SAMPLES / "binance_ws"
#: cryptofeed's recording of four symbols' ``@depth@100ms`` diffs (2021-10-12) ...
BINANCE_DIFF_SESSION = BINANCE_WS / "cryptofeed_BINANCE.ws.1.0.log"
#: ... and the REST snapshot of NKNUSDT taken during it (the first line of cryptofeed's log).
BINANCE_NKNUSDT_SNAPSHOT = BINANCE_REST / "cryptofeed_BINANCE.http.0.0.head1.log"
#: BTCUSDT ``@depth@100ms`` diffs (2025-12-07) and a ``@depth20`` book of an earlier day.
BINANCE_DIFFS_2025 = BINANCE_WS / "andrey_depth.head425.jsonl"
BINANCE_DEPTH20_2025 = BINANCE_WS / "andrey_bookDepthSnapshot.json"

OKX = REAL_SAMPLES / "okx"
#: cryptofeed's recording of the OKX v5 public websocket (2022-05-13): books with checksums.
OKX_SESSION = OKX / "cryptofeed_OKX.ws.1.0.head.log"
#: OKX docs examples (not captures): the only ``bbo-tbt`` message, a ``trades`` with ``count``.
OKX_BBO_TBT_DOC = OKX / "nautilus_ws_bbo_tbt.json"
OKX_TRADES_DOC = OKX / "nautilus_ws_trades.json"
#: ``GET /api/v5/public/instruments?instType=SPOT``: five USD-quoted spot instruments.
OKX_INSTRUMENTS_SPOT = OKX / "nautilus_http_get_instruments_spot.json"
#: ``GET /api/v5/market/trades`` BTC-USDT (2025-05-12): two trades, newest first, the rows
#: ``history-trades`` answers too.
OKX_REST_TRADES = OKX / "nautilus_http_get_trades.json"

DERIBIT = REAL_SAMPLES / "deribit"
#: cryptofeed's recording of Deribit v2 (2021-07-22): book snapshots and change-id chains.
DERIBIT_SESSION = DERIBIT / "cryptofeed_DERIBIT.ws.1.0.log"
DERIBIT_TRADES = DERIBIT / "nautilus_ws_trades.json"
DERIBIT_QUOTE = DERIBIT / "nautilus_ws_quote.json"
#: ``public/get_last_trades_by_instrument`` ETH-PERPETUAL (2025-12-21): ten trades, oldest
#: first, ``has_more`` true; the answer ``..._and_time`` gives too.
DERIBIT_REST_TRADES = DERIBIT / "nautilus_http_get_last_trades.json"
#: ``public/get_instruments``: a perpetual, a future, an option and a combo (mostly hand-made
#: by its source; see PROVENANCE.md section 6).
DERIBIT_INSTRUMENTS = DERIBIT / "nautilus_http_get_instruments.json"
#: ``/api/v3/exchangeInfo`` of 2021, cut to BTCUSDT and ETHUSDT by its source.
BINANCE_EXCHANGE_INFO = BINANCE_REST / "nautilus_http_spot_market_exchange_info.json"
