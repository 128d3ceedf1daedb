"""A small lake for the analytics API, written the way the platform writes it.

Trades, quotes and depth20 snapshots come from the simulator's deterministic market
(`marketlake.simulator.data`), are conformed to the table contract (`marketlake.schemas`)
and written with `Lake.replace_partition`; the derived tables (bars, spread, summary) are
built by the project's own SQL models (`dbt_like_sql.build`), exactly as `daily_job` does.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

import dbt_like_sql as dls
from marketlake import schemas
from marketlake.lake import Lake
from marketlake.simulator import SimConfig
from marketlake.simulator.book import depth_at, quotes_at
from marketlake.simulator.data import day_raw_trades

DAYS = (dt.date(2024, 3, 1), dt.date(2024, 3, 2), dt.date(2024, 3, 3))
#: (exchange, symbol, days) the lake holds.
INSTRUMENTS = (
    ("binance", "BTCUSDT", DAYS),
    ("binance", "ETHUSDT", DAYS),
    ("coinbase", "BTC-USD", DAYS[:1]),
)
CONFIG = SimConfig(trades_per_day=4_000, symbols=("BTCUSDT", "ETHUSDT", "BTC-USD"))
QUOTE_EVERY_S = 5
DEPTH_EVERY_S = 900
KEYS = schemas.MARKET_PARTITION_COLUMNS
INGESTED = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)


def day_start_us(day: dt.date) -> int:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return int(start.timestamp()) * 1_000_000


def trades_frame(exchange: str, symbol: str, day: dt.date) -> pl.DataFrame:
    raw = day_raw_trades(symbol, day, CONFIG)
    return schemas.conform(
        raw.with_columns(
            exchange=pl.lit(exchange),
            symbol=pl.lit(symbol),
            date=pl.lit(day),
            source=pl.lit("archive"),
            ingested_at=pl.lit(INGESTED),
        ),
        schemas.TRADES,
    )


def quotes_frame(exchange: str, symbol: str, day: dt.date) -> pl.DataFrame:
    times = day_start_us(day) + np.arange(0, 86_400, QUOTE_EVERY_S, dtype=np.int64) * 10**6
    book = quotes_at(symbol, times, CONFIG)
    ts = pl.from_epoch(pl.col("ts_us"), time_unit="us").dt.replace_time_zone("UTC")
    return schemas.conform(
        book.with_columns(
            exchange=pl.lit(exchange),
            symbol=pl.lit(symbol),
            date=pl.lit(day),
            ts=ts,
            received_at=ts,
        ),
        schemas.QUOTES,
    )


def depth_frame(exchange: str, symbol: str, day: dt.date) -> pl.DataFrame:
    rows = []
    for second in range(0, 86_400, DEPTH_EVERY_S):
        t_us = day_start_us(day) + second * 10**6
        book = depth_at(symbol, t_us, CONFIG)
        ts = dt.datetime.fromtimestamp(t_us / 1e6, dt.UTC)
        rows.append(
            {
                "exchange": exchange,
                "symbol": symbol,
                "date": day,
                "ts": ts,
                "received_at": ts,
                "last_update_id": book.update_id,
                "bid_prices": book.bid_prices.tolist(),
                "bid_qtys": book.bid_qtys.tolist(),
                "ask_prices": book.ask_prices.tolist(),
                "ask_qtys": book.ask_qtys.tolist(),
            }
        )
    return schemas.conform(pl.DataFrame(rows), schemas.DEPTH)


def build_lake(root: Path | Lake, instruments=INSTRUMENTS) -> Lake:
    """Every market table for `instruments`, through the project's writers and SQL models."""
    lake = root if isinstance(root, Lake) else Lake(str(root), {})
    manifest = dls.load_manifest()
    for exchange, symbol, days in instruments:
        for day in days:
            partition = {"exchange": exchange, "symbol": symbol, "date": day}
            lake.replace_partition("trades", trades_frame(exchange, symbol, day), partition, KEYS)
            lake.replace_partition("quotes", quotes_frame(exchange, symbol, day), partition, KEYS)
            lake.replace_partition(
                "ticks_depth", depth_frame(exchange, symbol, day), partition, KEYS
            )
            dls.build(manifest, lake, partition)
    return lake
