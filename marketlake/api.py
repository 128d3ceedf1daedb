"""`import marketlake as ml`: the lake's tables by instrument and day, as Polars LazyFrames.

Each reader resolves its arguments against the table's partitions (see `selection`), then
reads exactly the (exchange, symbol, date) partitions asked for through the lake's
per-version file index: no Delta log replay per call, no file outside the selection
touched. That keeps a chart-sized read in milliseconds on a lake of years x dozens of
symbols (`benchmarks/chart_queries.py`). Columns are the table's own, in its order.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from marketlake.errors import LakeError
from marketlake.instruments import DEFAULT_VENUE
from marketlake.lake import Lake
from marketlake.resampling import BAR_TABLES, bar_minutes, resample_bars
from marketlake.selection import Day, Symbols, resolve


def read(
    table: str,
    symbols: Symbols,
    start: Day,
    end: Day | None = None,
    *,
    exchange: str = DEFAULT_VENUE,
    lake: Lake | None = None,
) -> pl.LazyFrame:
    """Rows of any market-data table (`trades_history`, `ticks_trades`, ...) for symbols x days.

    Symbols are spelled as `exchange` (Binance unless told) spells them, or qualified
    (`"okx:BTC-USDT"`). Partitions come in the order of the symbols given, then by day;
    within a partition rows are as stored, except for the SQL models' tables
    (TIME_ORDERED), sorted by time. A day without data adds no rows; an unknown symbol,
    exchange or table, or a bad day, raises `LakeError` naming it.
    """
    lake = lake if lake is not None else Lake()
    if not isinstance(table, str) or not table.isidentifier():
        raise LakeError(f"invalid table name {table!r}")
    selection = resolve(lake, table, symbols, start, end, exchange)
    # resolve() has just checked the table for new commits: don't list _delta_log again
    return lake.read_partitions(
        table, selection.partitions(), refresh=False, sort_by=TIME_ORDERED.get(table)
    )


#: Tables the SQL models write, whose files keep rows in no particular order: readers sort
#: each partition by time (a partition holds at most 1,440 rows). The other tables are
#: written in order (trades by trade id, quotes by time) and read as stored.
TIME_ORDERED = {
    "bars_1m": "minute",
    "bars_1h": "minute",
    "bars_1d": "minute",
    "spread_1m": "minute",
}


def trades(
    symbols: Symbols,
    start: Day,
    end: Day | None = None,
    *,
    exchange: str = DEFAULT_VENUE,
    lake: Lake | None = None,
) -> pl.LazyFrame:
    """The clean `trades` table: one row per trade id per day, history and live merged."""
    return read("trades", symbols, start, end, exchange=exchange, lake=lake)


def quotes(
    symbols: Symbols,
    start: Day,
    end: Day | None = None,
    *,
    exchange: str = DEFAULT_VENUE,
    lake: Lake | None = None,
) -> pl.LazyFrame:
    """The `quotes` table: best bid/ask per update, ordered, duplicates removed."""
    return read("quotes", symbols, start, end, exchange=exchange, lake=lake)


def depth(
    symbols: Symbols,
    start: Day,
    end: Day | None = None,
    *,
    exchange: str = DEFAULT_VENUE,
    lake: Lake | None = None,
) -> pl.LazyFrame:
    """Top-of-book snapshots (`ticks_depth`): price and size lists, best level first."""
    return read("ticks_depth", symbols, start, end, exchange=exchange, lake=lake)


def spread(
    symbols: Symbols,
    start: Day,
    end: Day | None = None,
    *,
    exchange: str = DEFAULT_VENUE,
    lake: Lake | None = None,
) -> pl.LazyFrame:
    """`spread_1m`: per minute, quoted-spread statistics, mid, and the book VWAP price."""
    return read("spread_1m", symbols, start, end, exchange=exchange, lake=lake)


def summary(
    symbols: Symbols,
    start: Day,
    end: Day | None = None,
    *,
    exchange: str = DEFAULT_VENUE,
    lake: Lake | None = None,
) -> pl.LazyFrame:
    """`daily_summary`: one row per symbol-day (trades, volume, VWAP, OHLC, spread, gaps)."""
    return read("daily_summary", symbols, start, end, exchange=exchange, lake=lake)


def bars(
    symbols: Symbols,
    start: Day,
    end: Day | None = None,
    *,
    freq: str | dt.timedelta = "1m",
    exchange: str = DEFAULT_VENUE,
    lake: Lake | None = None,
) -> pl.LazyFrame:
    """OHLCV bars of any whole-minute length up to a day, aligned to the UTC day.

    1m, 1h and 1d (also spelled 60m, 1440m) read `bars_1m`, `bars_1h`, `bars_1d`; any
    other length is resampled from `bars_1m` exactly (`marketlake.resampling.resample_bars`).
    """
    minutes = bar_minutes(freq)
    table = BAR_TABLES.get(minutes)
    if table is not None:
        return read(table, symbols, start, end, exchange=exchange, lake=lake)
    one_minute = read("bars_1m", symbols, start, end, exchange=exchange, lake=lake)
    return resample_bars(one_minute, minutes)


__all__ = ["LakeError", "bars", "depth", "quotes", "read", "spread", "summary", "trades"]
