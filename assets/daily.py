"""The daily tables: clean `trades`, compacted `quotes`, and housekeeping of the live tables.

Each asset reads one instrument-day of its inputs (pruned scans), calls the pure
transforms of `daily_transforms`, and replaces exactly that partition.
"""

import time
from typing import Any

import dagster as dg
import polars as pl

from assets.daily_transforms import compact_quotes, merge_trades
from assets.partitioned import (
    CheckDef,
    PartitionKey,
    PartitionResult,
    check_specs,
    materialize_partitions,
)
from assets.trade_transforms import (
    count_ids,
    fill_from,
    missing_id_ranges,
    summarize,
    with_lake_keys,
)
from assets.trades_history_checks import CHECK_DESCRIPTIONS, check_frame, history_checks
from marketlake import schemas
from marketlake.exchanges.binance.endpoints import BinanceEndpoints
from marketlake.lake import Lake
from marketlake.quality import Check, CheckOutcome, Expectation, run_checks

PARTITIONS_PER_RUN = 30
LIVE_TABLES_COMPACTED = ("ticks_trades", "ticks_quotes", "ticks_depth")

TRADES_CHECKS = [
    *(
        CheckDef(name, CHECK_DESCRIPTIONS[name])
        for name in (
            "trade_ids_unique",
            "trade_ids_contiguous",
            "prices_and_sizes_positive",
            "ts_inside_partition_day",
            "no_nulls",
        )
    ),
    CheckDef(
        "sources_agree",
        "Where the archive/REST and the stream both have a trade id, they agree on it.",
        "WARN",
    ),
]

QUOTES_CHECKS = [
    CheckDef("quote_prices_positive", "bid_price > 0 and ask_price > 0 on every row."),
    CheckDef("quotes_no_nulls", "No column of a quote is null."),
    CheckDef("book_not_crossed", "best bid <= best ask on every quote.", "WARN"),
]


def build_daily_assets(partitions_def: dg.MultiPartitionsDefinition) -> list[dg.AssetsDefinition]:
    return [
        _trades_asset(partitions_def),
        _quotes_asset(partitions_def),
        _compaction_asset(partitions_def),
    ]


def build_trades_partition(
    key: PartitionKey, lake: Lake, binance: BinanceEndpoints | None
) -> PartitionResult:
    """Merge history and live trades for one day, fill holes from REST, write, check."""
    started = time.perf_counter()
    partition = key.lake_partition()
    merged = merge_trades(
        lake.scan("trades_history", schemas.TRADES, **partition),
        lake.scan("ticks_trades", schemas.TICKS_TRADES, **partition),
    )
    frame = merged.frame
    gaps = missing_id_ranges(frame)
    if gaps and binance is not None and key.exchange == "binance":
        rest = binance.rest()
        fill = pl.concat([rest.trades_between_ids(key.symbol, a, b) for a, b in gaps])
        fill = with_lake_keys(
            fill,
            exchange=key.exchange,
            symbol=key.symbol,
            date=key.date,
            source="rest",
            ingested_at=frame["ingested_at"].max() if frame.height else _now(),
        )
        frame = fill_from(frame, fill)
    remaining = missing_id_ranges(frame)
    version = lake.replace_partition("trades", frame, partition, schemas.MARKET_PARTITION_COLUMNS)

    checks = [c for c in history_checks(key.date, None) if c.name in CHECK_DESCRIPTIONS]
    outcomes = run_checks(check_frame(frame), checks)
    outcomes = [o for o in outcomes if o.name != "row_count_matches_archive"]
    outcomes.append(
        CheckOutcome(
            "sources_agree",
            passed=merged.conflicts == 0,
            severity="WARN",
            description=TRADES_CHECKS[-1].description,
            failing_rows=merged.conflicts,
            metadata={"conflicting_trade_ids": list(merged.conflict_sample)},
        )
    )
    stats = summarize(frame)
    seconds = time.perf_counter() - started
    metadata: dict[str, Any] = {
        **{k: v for k, v in stats.items() if k not in ("first_ts", "last_ts")},
        "duplicates_removed": merged.duplicates_removed,
        "conflicts": merged.conflicts,
        "input_rows_by_source": dict(merged.input_rows_by_source),
        "gaps_found": len(gaps),
        "ids_missing_before_fill": count_ids(gaps),
        "gaps_remaining": [list(r) for r in remaining[:20]],
        "delta_version": version,
        "duration_s": round(seconds, 3),
    }
    return PartitionResult(
        metadata=metadata,
        outcomes=outcomes,
        summary=(
            f"{frame.height:,} trades, {merged.duplicates_removed:,} duplicates removed, "
            f"{len(gaps)} gaps ({len(remaining)} left) in {seconds:.2f}s"
        ),
    )


def build_quotes_partition(key: PartitionKey, lake: Lake) -> PartitionResult:
    started = time.perf_counter()
    partition = key.lake_partition()
    ticks = lake.scan("ticks_quotes", schemas.QUOTES, **partition)
    frame = compact_quotes(ticks)
    version = lake.replace_partition("quotes", frame, partition, schemas.MARKET_PARTITION_COLUMNS)
    checked = frame.with_columns(spread=pl.col("ask_price") - pl.col("bid_price"))
    outcomes = (
        run_checks(
            checked,
            [
                Check(
                    "quote_prices_positive",
                    QUOTES_CHECKS[0].description,
                    [
                        Expectation(
                            "ExpectColumnValuesToBeBetween",
                            {"column": c, "min_value": 0, "strict_min": True},
                        )
                        for c in ("bid_price", "ask_price")
                    ],
                ),
                Check(
                    "quotes_no_nulls",
                    QUOTES_CHECKS[1].description,
                    [
                        Expectation("ExpectColumnValuesToNotBeNull", {"column": c})
                        for c in ("ts", "bid_price", "bid_qty", "ask_price", "ask_qty")
                    ],
                ),
                Check(
                    "book_not_crossed",
                    QUOTES_CHECKS[2].description,
                    [
                        Expectation(
                            "ExpectColumnValuesToBeBetween", {"column": "spread", "min_value": 0}
                        )
                    ],
                    severity="WARN",
                ),
            ],
        )
        if frame.height
        else []
    )
    seconds = time.perf_counter() - started
    return PartitionResult(
        metadata={"rows": frame.height, "delta_version": version, "duration_s": round(seconds, 3)},
        outcomes=outcomes,
        summary=f"{frame.height:,} quotes in {seconds:.2f}s",
    )


def compact_partition(key: PartitionKey, lake: Lake) -> PartitionResult:
    """Bin-pack one closed day of the live tables into few large files.

    Compaction commits only remove the files it rewrote, so a stream appending new files
    to the same table meanwhile is never broken (Delta's optimistic concurrency); the
    commit retries when the stream wins the race.
    """
    started = time.perf_counter()
    partition = key.lake_partition()
    metadata: dict[str, Any] = {}
    for table in LIVE_TABLES_COMPACTED:
        if not lake.exists(table):
            continue
        before = len(lake.partition_files(table, partition))
        if before > 1:
            lake.compact_partition(table, partition)
        metadata[f"{table}_files_before"] = before
        metadata[f"{table}_files_after"] = len(lake.partition_files(table, partition))
    seconds = time.perf_counter() - started
    metadata["duration_s"] = round(seconds, 3)
    summary = ", ".join(
        f"{t}: {metadata[f'{t}_files_before']} -> {metadata[f'{t}_files_after']} files"
        for t in LIVE_TABLES_COMPACTED
        if f"{t}_files_before" in metadata
    )
    return PartitionResult(metadata=metadata, summary=summary or "no live data")


def _now():
    import datetime as dt

    return dt.datetime.now(dt.UTC)


def _trades_asset(partitions_def: dg.MultiPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name="trades",
        group_name="daily",
        deps=["trades_history", "ticks_trades"],
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.multi_run(PARTITIONS_PER_RUN),
        check_specs=check_specs("trades", TRADES_CHECKS, partitions_def),
        kinds={"polars", "deltalake"},
        description=(
            "One row per trade id per instrument-day: history and live merged (archive > "
            "REST > stream on conflicts), deduplicated, holes filled from REST."
        ),
        metadata={"table": "trades"},
    )
    def trades(
        context: dg.AssetExecutionContext,
        lake: dg.ResourceParam[Lake],
        binance: dg.ResourceParam[BinanceEndpoints],
    ):
        yield from materialize_partitions(
            context, TRADES_CHECKS, lambda key: build_trades_partition(key, lake, binance)
        )

    return trades


def _quotes_asset(partitions_def: dg.MultiPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name="quotes",
        group_name="daily",
        deps=["ticks_quotes"],
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.multi_run(PARTITIONS_PER_RUN),
        check_specs=check_specs("quotes", QUOTES_CHECKS, partitions_def),
        kinds={"polars", "deltalake"},
        description="Best bid/ask per instrument-day from the live quotes: ordered, deduplicated.",
        metadata={"table": "quotes"},
    )
    def quotes(context: dg.AssetExecutionContext, lake: dg.ResourceParam[Lake]):
        yield from materialize_partitions(
            context, QUOTES_CHECKS, lambda key: build_quotes_partition(key, lake)
        )

    return quotes


def _compaction_asset(partitions_def: dg.MultiPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name="ticks_compaction",
        group_name="daily",
        deps=["trades", "quotes", *LIVE_TABLES_COMPACTED],
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.multi_run(PARTITIONS_PER_RUN),
        kinds={"deltalake"},
        description=(
            "Compacts a closed day of ticks_trades / ticks_quotes / ticks_depth from many "
            "one-second appends into few large files, after the daily tables have read it."
        ),
    )
    def ticks_compaction(context: dg.AssetExecutionContext, lake: dg.ResourceParam[Lake]):
        yield from materialize_partitions(context, [], lambda key: compact_partition(key, lake))

    return ticks_compaction


class VacuumConfig(dg.Config):
    """How long removed files stay readable (time travel, slow readers) before deletion."""

    retention_hours: int = 168


@dg.asset(
    name="lake_vacuum",
    group_name="housekeeping",
    deps=list(LIVE_TABLES_COMPACTED),
    kinds={"deltalake"},
    description=(
        "Deletes data files that compaction replaced, once they are older than the "
        "retention (default 7 days, Delta's own default), from the live tables."
    ),
)
def lake_vacuum(config: VacuumConfig, lake: dg.ResourceParam[Lake]) -> dg.MaterializeResult:
    deleted = {
        table: len(lake.vacuum(table, config.retention_hours))
        for table in LIVE_TABLES_COMPACTED
        if lake.exists(table)
    }
    return dg.MaterializeResult(
        metadata={
            "retention_hours": config.retention_hours,
            **{f"{t}_files_deleted": n for t, n in deleted.items()},
        }
    )
