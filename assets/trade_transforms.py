"""Pure Polars transforms over trades: keys and lineage, gaps, gap fill, summaries.

No I/O and no Dagster here, so every rule about which trade is kept and how a gap is
reported is unit-tested on tiny frames and on the real archive samples.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from marketlake import schemas


def with_lake_keys(
    raw: pl.DataFrame,
    *,
    exchange: str,
    symbol: str,
    date: dt.date,
    source: str | pl.Expr,
    ingested_at: dt.datetime,
) -> pl.DataFrame:
    """Turn parser output (`schemas.RAW_TRADES`) into `trades_history` rows.

    The keys are added eagerly: a lazy query here comes back cut into morsel-sized chunks,
    and every later consumer (the Delta writer, GE's pandas view) would copy them together.
    """
    return schemas.conform(
        raw.with_columns(
            exchange=pl.lit(exchange),
            symbol=pl.lit(symbol),
            date=pl.lit(date),
            source=source if isinstance(source, pl.Expr) else pl.lit(source),
            ingested_at=pl.lit(ingested_at).dt.replace_time_zone("UTC")
            if ingested_at.tzinfo is None
            else pl.lit(ingested_at),
        ),
        schemas.TRADES,
    )


def missing_id_ranges(frame: pl.DataFrame | pl.LazyFrame) -> list[tuple[int, int]]:
    """Inclusive trade-id ranges missing between the frame's smallest and largest id.

    Duplicates don't hide a gap and don't make one: a repeated id is a step of 0, never
    more than 1, so the sorted ids need no deduplication (a hash pass over every id).
    """
    gaps = (
        frame.lazy()
        .select(pl.col("trade_id").sort())
        .with_columns(previous=pl.col("trade_id").shift(1))
        .filter(pl.col("trade_id") - pl.col("previous") > 1)
        .select(first=pl.col("previous") + 1, last=pl.col("trade_id") - 1)
        .collect()
    )
    return list(zip(gaps["first"].to_list(), gaps["last"].to_list(), strict=True))


def count_ids(ranges: list[tuple[int, int]]) -> int:
    return sum(last - first + 1 for first, last in ranges)


def fill_from(primary: pl.DataFrame, fill: pl.DataFrame) -> pl.DataFrame:
    """Add the rows of `fill` whose ids `primary` lacks; `primary` wins on any shared id.

    Both frames carry a `source` column; the result is sorted by trade id.
    """
    if fill.is_empty():
        return primary.sort("trade_id")
    extra = fill.join(primary.select("trade_id"), on="trade_id", how="anti")
    return pl.concat([primary, extra], how="vertical").sort("trade_id")


def day_bounds(date: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of the UTC day."""
    start = dt.datetime.combine(date, dt.time(), tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def summarize(frame: pl.DataFrame) -> dict[str, Any]:
    """What a user checks first about a partition: size, id range, time range, VWAP."""
    if frame.is_empty():
        return {"rows": 0}
    row = frame.select(
        rows=pl.len(),
        first_trade_id=pl.col("trade_id").min(),
        last_trade_id=pl.col("trade_id").max(),
        first_ts=pl.col("ts").min(),
        last_ts=pl.col("ts").max(),
        vwap=(pl.col("price") * pl.col("qty")).sum() / pl.col("qty").sum(),
        volume=pl.col("qty").sum(),
    ).row(0, named=True)
    by_source = frame.group_by("source").len().sort("source")
    row["rows_by_source"] = dict(zip(by_source["source"], by_source["len"], strict=True))
    return row
