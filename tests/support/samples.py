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
