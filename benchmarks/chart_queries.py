"""Chart queries: what a chart asks the lake for, read with Polars, median of warm calls.

The lake holds `trades` and `bars_1m` as a year of a 50-symbol deployment leaves them:
the measured days (3 symbols x 10 days, one BTCUSDT day of 5M trades, bars built by the
bars_1m model) plus 18,250 other partitions (50 symbols x 365 days, one commit per day).
Those hold one row each: the Delta log carries what a year puts in it (files, commits,
checkpoints) without the bytes, which no query here reads. Each query is timed as a reader
runs it again and again (warm: page cache full, the query done before):

- 1,440 one-minute bars of one symbol-day (`bars_1m`);
- 52,000 raw trades: a time window of the 5M-trade day (`trades`, filtered on `ts`);
- the VWAP of the whole 5M-trade day (`trades`, sum(price*qty) / sum(qty)).

Three read paths: `pl.scan_delta(...).filter(...)` (it replays the Delta log on every
call), `Lake.read_partition`, which keeps the table's file list indexed by partition and
only checks for new commits, and the analytics API the README shows (`ml.bars`,
`ml.trades`), which adds argument checks and symbol resolution on top of that index. The
API is also timed on what only it does: five-minute bars resampled from `bars_1m`, and the
one-minute bars of every measured symbol-day at once (many partitions in one read).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import polars as pl

import dbt_like_sql as dls
import marketlake as ml
from benchmarks.common import (
    DAY,
    EXCHANGE,
    MARKET_KEYS,
    SYMBOL,
    Context,
    Row,
    human_count,
    lake_partition,
)
from marketlake.lake import Lake
from marketlake.simulator import SimConfig
from marketlake.simulator.data import day_raw_trades

NAME = "chart_queries"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
RAW_TRADES_WANTED = 52_000
#: A published Redis TimeSeries chart service (1,440 points; 52,000 points).
REDIS_TS_MS = {"bars": 100.0, "raw": 700.0}
BARS = ("minute", "open", "high", "low", "close", "volume")
RAW = ("ts", "trade_id", "price", "qty", "is_buyer_maker")


def build_lake(ctx: Context, lake: Lake, big: int, small: int, days: int) -> None:
    """`trades` and `bars_1m` for SYMBOLS x days; BTCUSDT on DAY has `big` trades."""
    from assets.trade_transforms import with_lake_keys

    manifest = dls.load_manifest()
    for symbol in SYMBOLS:
        for i in range(days):
            date = DAY + dt.timedelta(days=i)
            n = big if (symbol, date) == (SYMBOL, DAY) else small
            raw = day_raw_trades(symbol, date, SimConfig(trades_per_day=n, symbols=SYMBOLS))
            frame = with_lake_keys(
                raw,
                exchange=EXCHANGE,
                symbol=symbol,
                date=date,
                source="archive",
                ingested_at=dt.datetime(2024, 6, 1, tzinfo=dt.UTC),
            )
            partition = lake_partition(symbol, date)
            lake.replace_partition("trades", frame, partition, MARKET_KEYS)
            dls.materialize(manifest, "bars_1m", lake, partition)


def add_history(lake: Lake, symbols: int, days: int) -> int:
    """`days` earlier days of `symbols` symbols in both tables, one commit per day."""
    names = [*SYMBOLS, *(f"S{i:03d}USDT" for i in range(symbols - len(SYMBOLS)))]
    templates = {
        t: lake.scan(t, **lake_partition()).head(1).collect() for t in ("trades", "bars_1m")
    }
    for i in range(1, days + 1):
        date = DAY - dt.timedelta(days=i)
        for table, row in templates.items():
            frame = pl.concat(
                [row.with_columns(symbol=pl.lit(s), date=pl.lit(date)) for s in names]
            )
            lake.append(table, frame, MARKET_KEYS)
    return len(names) * days


def naive_queries(lake: Lake, window: tuple[dt.datetime, dt.datetime]) -> dict[str, Callable]:
    """The reads as a user writes them from the README: `pl.scan_delta` + filters."""
    bars_uri, trades_uri = lake.table_uri("bars_1m"), lake.table_uri("trades")
    day = (pl.col("symbol") == SYMBOL) & (pl.col("date") == DAY)
    return _queries(
        lambda: pl.scan_delta(bars_uri).filter(day),
        lambda: pl.scan_delta(trades_uri).filter(day),
        window,
    )


def lake_queries(lake: Lake, window: tuple[dt.datetime, dt.datetime]) -> dict[str, Callable]:
    """The same reads through `Lake.read_partition`."""
    partition = lake_partition()
    return _queries(
        lambda: lake.read_partition("bars_1m", **partition),
        lambda: lake.read_partition("trades", **partition),
        window,
    )


def api_queries(lake: Lake, window: tuple[dt.datetime, dt.datetime]) -> dict[str, Callable]:
    """The same reads through `import marketlake as ml`, as the README shows them."""
    return _queries(
        lambda: ml.bars(SYMBOL, DAY, lake=lake),
        lambda: ml.trades(SYMBOL, DAY, lake=lake),
        window,
    )


def api_only_queries(lake: Lake, days: int) -> dict[str, Callable]:
    """What only the API does: resampled bars, and many partitions in one read."""
    last = DAY + dt.timedelta(days=days - 1)
    return {
        "bars_5m": lambda: ml.bars(SYMBOL, DAY, freq="5m", lake=lake).select(BARS).collect(),
        "bars_many": lambda: (
            ml.bars(list(SYMBOLS), DAY, last, lake=lake).select("symbol", *BARS).collect()
        ),
    }


def _queries(bars: Callable, trades: Callable, window) -> dict[str, Callable]:
    start, end = window
    vwap = (pl.col("price") * pl.col("qty")).sum() / pl.col("qty").sum()
    return {
        "bars": lambda: bars().select(BARS).collect(),
        "raw": lambda: (
            trades().filter(pl.col("ts") >= start, pl.col("ts") < end).select(RAW).collect()
        ),
        "vwap": lambda: trades().select(vwap).collect(),
    }


def time_ms(
    query: Callable[[], pl.DataFrame], calls: int, warmup: int = 2
) -> tuple[list[float], pl.DataFrame]:
    for _ in range(warmup):
        result = query()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        result = query()
        samples.append(1000 * (time.perf_counter() - started))
    return samples, result


def raw_window(lake: Lake) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) holding exactly RAW_TRADES_WANTED trades of the big day, from noon."""
    noon = dt.datetime.combine(DAY, dt.time(12), tzinfo=dt.UTC)
    ts = (
        lake.scan("trades", **lake_partition())
        .filter(pl.col("ts") >= noon)
        .select("ts")
        .sort("ts")
        .head(RAW_TRADES_WANTED + 1)
        .collect()["ts"]
    )
    if ts.len() <= RAW_TRADES_WANTED or ts[-1] == ts[-2]:
        return noon, ts[-1] + dt.timedelta(microseconds=1)
    return noon, ts[-1]


def run(ctx: Context) -> list[Row]:
    big, small, days = (5_000_000, 200_000, 10) if not ctx.quick else (60_000, 5_000, 2)
    history = (50, 365) if not ctx.quick else (5, 3)
    lake = Lake(str(ctx.path("chart-lake")))
    started = time.perf_counter()
    build_lake(ctx, lake, big, small, days)
    extra = add_history(lake, *history)
    ctx.log(
        f"  chart lake: {len(SYMBOLS)} x {days} measured days + {extra:,} history partitions "
        f"per table in {time.perf_counter() - started:.0f}s"
    )
    window = raw_window(lake)
    calls = 5 if ctx.quick else 30
    rows = []
    for variant, queries in (
        ("pl.scan_delta", naive_queries(lake, window)),
        ("Lake.read_partition", lake_queries(lake, window)),
        ("ml.bars / ml.trades", api_queries(lake, window)),
    ):
        bars, bars_frame = time_ms(queries["bars"], calls)
        raw, raw_frame = time_ms(queries["raw"], calls)
        vwap, _ = time_ms(queries["vwap"], calls)
        rows += [
            Row(
                "chart queries",
                f"{bars_frame.height:,} one-minute bars of one symbol-day ({variant})",
                "ms",
                bars,
                bar=10.0,
                better="lower",
                fmt="{:.1f}",
                compare=f"Redis TimeSeries chart ~{REDIS_TS_MS['bars']:.0f} ms for 1,440 points",
            ),
            Row(
                "chart queries",
                f"{raw_frame.height:,} raw trades, a time window of one day ({variant})",
                "ms",
                raw,
                bar=50.0,
                better="lower",
                fmt="{:.1f}",
                compare=f"Redis TimeSeries chart ~{REDIS_TS_MS['raw']:.0f} ms for 52,000 points",
            ),
            Row(
                "chart queries",
                f"VWAP of a whole {human_count(big)}-trade day ({variant})",
                "ms",
                vwap,
                bar=300.0,
                better="lower",
                fmt="{:.1f}",
                compare="–",
            ),
        ]
    extra = api_only_queries(lake, days)
    five, five_frame = time_ms(extra["bars_5m"], calls)
    many, many_frame = time_ms(extra["bars_many"], calls)
    rows += [
        Row(
            "chart queries",
            f"{five_frame.height:,} five-minute bars of one symbol-day, resampled from "
            "bars_1m (ml.bars freq='5m')",
            "ms",
            five,
            bar=10.0,
            better="lower",
            fmt="{:.1f}",
            compare="–",
        ),
        Row(
            "chart queries",
            f"{many_frame.height:,} one-minute bars of {len(SYMBOLS)} symbols x {days} days "
            f"({len(SYMBOLS) * days} partitions, ml.bars)",
            "ms",
            many,
            better="lower",
            fmt="{:.1f}",
            compare="–",
        ),
    ]
    return rows
