"""Where the real exchange data lives: `../shared/real-samples` beside the checkout."""

from __future__ import annotations

from pathlib import Path

#: The real exchange data beside the checkout (see its PROVENANCE.md).
REAL_SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "real-samples"
BINANCE_VISION = REAL_SAMPLES / "binance_vision"
BINANCE_REST = REAL_SAMPLES / "binance_rest"
#: The first rows of two real archive days: milliseconds (2024) and microseconds (2025).
TRADES_CSV_2024 = BINANCE_VISION / "BTCUSDT-trades-2024-12-31.head.csv"
TRADES_CSV_2025 = BINANCE_VISION / "BTCUSDT-trades-2025-01-01.head.csv"
