"""Pure daily compaction transforms: one clean `trades` and `quotes` partition per day.

No I/O and no Dagster: the daily assets read the day's `trades_history` and `ticks_*`
partitions, call these, and write the result, so every rule about which row survives is
unit-tested on inline frames and the real archive samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import polars as pl

from assets.trade_transforms import missing_id_ranges
from marketlake import schemas

#: On a trade id both sides have, the first source here wins: the archive is the
#: exchange's published record, REST its answer after the fact, the stream a live copy.
SOURCE_PRIORITY: Final = {source: rank for rank, source in enumerate(schemas.SOURCES)}

#: The values two copies of one trade id must agree on.
TRADE_VALUES: Final = ("price", "qty", "quote_qty", "ts", "is_buyer_maker")

#: Conflicting trade ids kept in a MergeResult, for check metadata.
CONFLICT_SAMPLE: Final = 20

__all__ = ["MergeResult", "compact_quotes", "merge_trades", "missing_id_ranges"]


@dataclass(frozen=True)
class MergeResult:
    """The merged day (schemas.TRADES, sorted by trade id) and what merging it took."""

    frame: pl.DataFrame
    rows: int
    duplicates_removed: int
    conflicts: int
    """Trade ids whose copies disagree on a value in TRADE_VALUES (the best source wins)."""
    rows_by_source: Mapping[str, int] = field(default_factory=dict)
    """Kept rows per source of the copy that was kept."""
    input_rows_by_source: Mapping[str, int] = field(default_factory=dict)
    conflict_sample: tuple[int, ...] = ()


def merge_trades(history: pl.LazyFrame, ticks: pl.LazyFrame) -> MergeResult:
    """Merge one (exchange, symbol, date) of `trades_history` and `ticks_trades`.

    One row per trade id. A trade seen several times (archive and stream, or the stream's
    at-least-once redelivery) keeps the copy of the best source (archive > rest > ws),
    then the earliest ingested, so the result does not depend on input order. Copies that
    disagree on a value are counted as conflicts, never silently averaged.
    """
    union = pl.concat(
        [schemas.conform(history, schemas.TRADES), schemas.conform(ticks, schemas.TRADES)],
        how="vertical",
    )
    _require_one_partition(union)
    ranked = union.with_columns(
        _priority=pl.col("source").replace_strict(SOURCE_PRIORITY, default=len(SOURCE_PRIORITY))
    ).sort(["trade_id", "_priority", "ingested_at", *TRADE_VALUES], nulls_last=True)
    merged = ranked.unique("trade_id", keep="first", maintain_order=True).drop("_priority")
    conflicting = (
        union.group_by("trade_id")
        .agg(pl.struct(TRADE_VALUES).n_unique().alias("versions"))
        .filter(pl.col("versions") > 1)
        .sort("trade_id")["trade_id"]
    )
    return MergeResult(
        frame=merged,
        rows=merged.height,
        duplicates_removed=union.height - merged.height,
        conflicts=conflicting.len(),
        rows_by_source=_counts(merged),
        input_rows_by_source=_counts(union),
        conflict_sample=tuple(conflicting.head(CONFLICT_SAMPLE).to_list()),
    )


def compact_quotes(ticks_quotes: pl.LazyFrame) -> pl.DataFrame:
    """One day of `ticks_quotes` as `quotes`: ordered by (ts, update_id), exact duplicates
    (the stream's at-least-once redelivery) removed.

    Only exact duplicates go: two updates that differ in anything, even `received_at`,
    were two deliveries the lander saw, and the raw table keeps that fact.
    """
    quotes = schemas.conform(ticks_quotes, schemas.QUOTES)
    return quotes.unique(maintain_order=False).sort(
        ["ts", "update_id", *(c for c in schemas.QUOTES if c not in ("ts", "update_id"))],
        nulls_last=True,
    )


def _require_one_partition(frame: pl.DataFrame) -> None:
    """The merge is per (exchange, symbol, date); mixed keys mean the caller's scan is wrong."""
    keys = frame.select(schemas.MARKET_PARTITION_COLUMNS).unique()
    if keys.height > 1:
        raise ValueError(
            f"merge_trades takes one (exchange, symbol, date), got {keys.height}: "
            f"{keys.head(3).to_dicts()}"
        )


def _counts(frame: pl.DataFrame) -> dict[str, int]:
    by_source = frame.group_by("source").len().sort("source", nulls_last=True)
    return dict(zip(by_source["source"].to_list(), by_source["len"].to_list(), strict=True))
