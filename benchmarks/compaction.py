"""Compaction: files in a day's partition of `ticks_trades` before and after, and its time.

The streaming lander appends one commit per table per flush (every second by default), so
a closed day of one symbol holds up to 86,400 small files. Here `APPENDS` one-second
appends (an hour: a representative fraction of the day; compaction time grows linearly
with the files) are made with `Lake.append`, exactly as the lander's sink makes them, at
~25 trades each. The table is made once; every run compacts a fresh copy of it with
`compact_partition` (what the daily `ticks_compaction` asset calls).
"""

from __future__ import annotations

import datetime as dt
import shutil
import time

import polars as pl

from assets.daily import compact_partition
from assets.partition_key import PartitionKey
from benchmarks.common import DAY, SYMBOL, Context, Row, lake_partition
from marketlake import schemas
from marketlake.instruments import Instrument
from marketlake.lake import Lake

NAME = "compaction"
TABLE = "ticks_trades"
TRADES_PER_APPEND = 25


def one_second(i: int) -> pl.DataFrame:
    """The trades the lander would flush for second `i` of the day."""
    start = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC) + dt.timedelta(seconds=i)
    k = TRADES_PER_APPEND
    ts = [start + dt.timedelta(microseconds=j * 1_000_000 // k) for j in range(k)]
    return pl.DataFrame(
        {
            "exchange": "binance",
            "symbol": SYMBOL,
            "date": DAY,
            "trade_id": pl.int_range(i * k, (i + 1) * k, eager=True),
            "price": 60_000.0 + i % 100,
            "qty": 0.01,
            "quote_qty": 600.0,
            "ts": ts,
            "is_buyer_maker": [j % 2 == 0 for j in range(k)],
            "source": "ws",
            "ingested_at": ts,
            "received_at": ts,
        }
    ).select(pl.col(c).cast(t) for c, t in schemas.TICKS_TRADES.items())


def run(ctx: Context) -> list[Row]:
    appends = ctx.size(3_600, 30)
    source = Lake(str(ctx.path("compaction-source")))
    started = time.perf_counter()
    for i in range(appends):
        source.append(TABLE, one_second(i), schemas.MARKET_PARTITION_COLUMNS)
    append_s = time.perf_counter() - started
    partition = lake_partition()
    files_before = len(source.partition_files(TABLE, partition))
    ctx.log(f"  compaction: {appends} appends in {append_s:.1f}s, {files_before} files")
    seconds, after = [], []
    for i in range(ctx.runs):
        copy = ctx.workdir / f"compaction-run-{i}"
        shutil.copytree(source.uri, copy)
        lake = Lake(str(copy))
        began = time.perf_counter()
        result = compact_partition(PartitionKey(DAY, Instrument("binance", SYMBOL)), lake)
        seconds.append(time.perf_counter() - began)
        after.append(result.metadata[f"{TABLE}_files_after"])
        rows = lake.scan(TABLE, **partition).select(pl.len()).collect().item()
        assert rows == appends * TRADES_PER_APPEND, rows
        shutil.rmtree(copy)
    per_append_ms = 1000 * append_s / appends
    return [
        Row(
            "compaction",
            f"files in the partition after compacting {appends:,} one-second appends",
            "files",
            after,
            bar=2,
            better="lower",
            compare=f"{files_before:,} files before",
        ),
        Row(
            "compaction",
            f"compaction time for {appends:,} files ({appends * TRADES_PER_APPEND:,} rows)",
            "s",
            seconds,
            better="lower",
            fmt="{:.2f}",
            compare=(
                f"a full day (86,400 files) extrapolates to "
                f"~{sorted(seconds)[len(seconds) // 2] * 86_400 / appends:.0f} s; "
                f"the appends took {per_append_ms:.1f} ms each"
            ),
        ),
    ]
