"""The table contract of docs/design.md as Polars schemas, and symbol validation.

Every writer conforms its frame to one of these schemas before it touches the lake, so a
reader (Polars, pandas, DuckDB, Spark) sees the same types whichever path wrote a row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

import polars as pl

UTC_US: Final = pl.Datetime("us", "UTC")

#: Market-data tables are partitioned by these columns, in this order.
MARKET_PARTITION_COLUMNS: Final = ("exchange", "symbol", "date")
#: `quarantine` and `stream_events` are partitioned by day only.
EVENT_PARTITION_COLUMNS: Final = ("date",)

_KEYS: Final = {"exchange": pl.String, "symbol": pl.String, "date": pl.Date}

RAW_TRADES: Final = pl.Schema(
    {
        "trade_id": pl.Int64,
        "price": pl.Float64,
        "qty": pl.Float64,
        "quote_qty": pl.Float64,
        "ts": UTC_US,
        "is_buyer_maker": pl.Boolean,
    }
)
"""Trades as every exchange parser returns them, before lake keys and lineage are added."""

TRADES: Final = pl.Schema(
    {
        **_KEYS,
        "trade_id": pl.Int64,
        "price": pl.Float64,
        "qty": pl.Float64,
        "quote_qty": pl.Float64,
        "ts": UTC_US,
        "is_buyer_maker": pl.Boolean,
        "source": pl.String,
        "ingested_at": UTC_US,
    }
)
"""`trades_history` and `trades`."""

TICKS_TRADES: Final = pl.Schema({**TRADES, "received_at": UTC_US})

QUOTES: Final = pl.Schema(
    {
        **_KEYS,
        "ts": UTC_US,
        "received_at": UTC_US,
        "update_id": pl.Int64,
        "bid_price": pl.Float64,
        "bid_qty": pl.Float64,
        "ask_price": pl.Float64,
        "ask_qty": pl.Float64,
    }
)
"""`ticks_quotes` and `quotes`."""

DEPTH: Final = pl.Schema(
    {
        **_KEYS,
        "ts": UTC_US,
        "received_at": UTC_US,
        "last_update_id": pl.Int64,
        "bid_prices": pl.List(pl.Float64),
        "bid_qtys": pl.List(pl.Float64),
        "ask_prices": pl.List(pl.Float64),
        "ask_qtys": pl.List(pl.Float64),
    }
)
"""`ticks_depth`: top-N book snapshots, best level first."""

QUARANTINE: Final = pl.Schema(
    {
        "date": pl.Date,
        "ts": UTC_US,
        "exchange": pl.String,
        "symbol": pl.String,
        "source": pl.String,
        "reason": pl.String,
        "payload": pl.String,
    }
)

STREAM_EVENTS: Final = pl.Schema(
    {
        "date": pl.Date,
        "ts": UTC_US,
        "exchange": pl.String,
        "symbol": pl.String,
        "kind": pl.String,
        "detail": pl.String,
    }
)

SOURCES: Final = ("archive", "rest", "ws")

#: Longest payload kept in `quarantine`: enough to diagnose, small enough for any frame.
QUARANTINE_PAYLOAD_LIMIT: Final = 4096


def conform(frame: pl.DataFrame | pl.LazyFrame, schema: pl.Schema) -> pl.DataFrame:
    """Select exactly `schema`'s columns, in order, cast to its types.

    A missing column is a programming error and raises `pl.exceptions.ColumnNotFoundError`
    here, before anything is written, rather than as a schema mismatch inside a Delta commit.
    """
    lazy = frame.lazy() if isinstance(frame, pl.DataFrame) else frame
    return lazy.select(pl.col(name).cast(dtype) for name, dtype in schema.items()).collect()


# --- symbols -------------------------------------------------------------------------------

_BINANCE_SYMBOL: Final = re.compile(r"^[A-Z0-9]{2,20}$")
_COINBASE_PRODUCT: Final = re.compile(r"^[A-Z0-9]{2,10}-[A-Z0-9]{2,10}$")

#: The exchanges whose rules live here; every other venue's are the registry's.
_OWN_RULES: Final = ("binance", "coinbase")


def __getattr__(name: str) -> object:
    """``EXCHANGES``: every venue of `marketlake.exchanges.registry`, in its order.

    Read from the registry on first use rather than repeated here, so a venue added there
    (OKX, Deribit) is a lake exchange everywhere at once. Imported lazily: the registry
    imports this module, and importing it loads no feed package.
    """
    if name == "EXCHANGES":
        from marketlake.exchanges.registry import VENUES

        return tuple(VENUES)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class InvalidSymbolError(ValueError):
    """A symbol that can't be an instrument of the exchange; it never reaches a path or URL."""


def normalize_symbol(symbol: str, exchange: str = "binance") -> str:
    """Return the exchange's canonical spelling of `symbol`, or refuse it.

    A symbol becomes part of lake paths, URLs and SQL parameters, so anything outside the
    exchange's alphabet (slashes, dots, `?`, whitespace) is refused here, once, with the
    offending text in the message.
    """
    if not isinstance(symbol, str):
        raise InvalidSymbolError(f"symbol must be a string, got {type(symbol).__name__}")
    candidate = symbol.strip().upper()
    if exchange == "binance":
        if not _BINANCE_SYMBOL.fullmatch(candidate):
            raise InvalidSymbolError(
                f"invalid Binance symbol {symbol!r}: expected 2-20 letters or digits, like BTCUSDT"
            )
    elif exchange == "coinbase":
        if not _COINBASE_PRODUCT.fullmatch(candidate):
            raise InvalidSymbolError(
                f"invalid Coinbase product {symbol!r}: expected BASE-QUOTE, like BTC-USD"
            )
    else:
        from marketlake.exchanges.registry import VENUES

        found = VENUES.get(exchange) if isinstance(exchange, str) else None
        if found is None or exchange in _OWN_RULES:
            raise InvalidSymbolError(
                f"unknown exchange {exchange!r}: expected one of {', '.join(VENUES)}"
            )
        return found.normalize_symbol(symbol)
    return candidate


def parse_symbols(values: Iterable[str], exchange: str = "binance") -> list[str]:
    """Split comma- or space-separated symbols, validate each, keep first-seen order."""
    symbols: list[str] = []
    for value in values:
        for part in re.split(r"[,\s]+", value):
            if part:
                symbol = normalize_symbol(part, exchange)
                if symbol not in symbols:
                    symbols.append(symbol)
    if not symbols:
        raise InvalidSymbolError("no symbols given")
    return symbols
