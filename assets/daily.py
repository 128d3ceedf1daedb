"""The daily tables: clean `trades`, compacted `quotes`, and housekeeping of the live tables.

Each asset reads one instrument-day of its inputs (pruned scans), calls the pure
transforms of `daily_transforms`, checks the result and, only if every ERROR check passed,
replaces exactly that partition (otherwise the previous rows stay).
"""

import time
from collections.abc import Mapping
from typing import Any

import dagster as dg
import polars as pl

from assets.chart_metadata import trades_chart_metadata
from assets.daily_transforms import compact_quotes
from assets.merged_days import MergedDay, merge_trades_partition, take_merged
from assets.partition_key import PartitionKey
from assets.partitioned import (
    PARTITIONS_PER_RUN,
    PartitionResult,
    PendingWrite,
    check_specs,
    materialize_partitions,
    write_now,
)
from assets.trade_transforms import count_ids, summarize
from assets.trades_history_checks import (
    NO_NULLS,
    PRICES_AND_SIZES_POSITIVE,
    TRADE_IDS_CONTIGUOUS,
    TRADE_IDS_UNIQUE,
    TS_INSIDE_PARTITION_DAY,
    TradeDay,
    check_frame,
)
from marketlake import schemas
from marketlake.exchanges.binance.endpoints import BinanceEndpoints
from marketlake.exchanges.histories import RestHistories
from marketlake.lake import Lake
from marketlake.quality import (
    Check,
    CheckOutcome,
    Expectation,
    run_checks_batch,
)

LIVE_TABLES_COMPACTED = ("ticks_trades", "ticks_quotes", "ticks_depth")

SOURCES_AGREE = Check(
    "sources_agree",
    "Where the archive/REST and the stream both have a trade id, they agree on it.",
    severity="WARN",  # counted by the merge, which keeps the archive's copy
)

#: The checks of `trades`: the trade checks that hold for a merged day too. (An empty day
#: is not refused here: a day with neither history nor live trades has no rows to lose.)
TRADES_CHECKS = [
    TRADE_IDS_UNIQUE,
    TRADE_IDS_CONTIGUOUS,
    PRICES_AND_SIZES_POSITIVE,
    TS_INSIDE_PARTITION_DAY,
    NO_NULLS,
    SOURCES_AGREE,
]

#: The checks of `quotes` (run on the day's quotes with their spread beside them).
QUOTES_CHECKS = [
    Check(
        "quote_prices_positive",
        "bid_price > 0 and ask_price > 0 on every row.",
        expectations=[
            Expectation(
                "ExpectColumnValuesToBeBetween", {"column": c, "min_value": 0, "strict_min": True}
            )
            for c in ("bid_price", "ask_price")
        ],
    ),
    Check(
        "quotes_no_nulls",
        "No column of a quote is null.",
        expectations=[
            Expectation("ExpectColumnValuesToNotBeNull", {"column": c})
            for c in ("ts", "bid_price", "bid_qty", "ask_price", "ask_qty")
        ],
    ),
    Check(
        "book_not_crossed",
        "best bid <= best ask on every quote.",
        severity="WARN",
        expectations=[
            Expectation("ExpectColumnValuesToBeBetween", {"column": "spread", "min_value": 0})
        ],
    ),
]


def build_daily_assets(partitions_def: dg.MultiPartitionsDefinition) -> list[dg.AssetsDefinition]:
    return [
        _trades_asset(partitions_def),
        _quotes_asset(partitions_def),
        _compaction_asset(partitions_def),
    ]


def check_merged_days(days: Mapping[str, MergedDay]) -> dict[str, list[CheckOutcome]]:
    """The checks of `trades` for many merged days, in as few GE validations as it takes."""
    params = {name: TradeDay(day.key.date) for name, day in days.items()}
    frames = {name: check_frame(day.frame, params[name]) for name, day in days.items()}
    outcomes = run_checks_batch(frames, TRADES_CHECKS, params)
    for name, day in days.items():
        outcomes[name].append(
            SOURCES_AGREE.outcome(
                day.merged.conflicts == 0,
                failing_rows=day.merged.conflicts,
                metadata={"conflicting_trade_ids": list(day.merged.conflict_sample)},
            )
        )
    return outcomes


def merged_day_result(day: MergedDay) -> PartitionResult:
    """The day's metadata, with its rows pending a write (`delta_version` comes with it)
    and the day to check (`check_merged_days`)."""
    merged = day.merged
    stats = summarize(day.frame)
    partition = day.key.lake_partition()
    return PartitionResult(
        metadata={
            **trades_chart_metadata(day.frame, day.key),
            **{k: v for k, v in stats.items() if k not in ("first_ts", "last_ts")},
            "duplicates_removed": merged.duplicates_removed,
            "conflicts": merged.conflicts,
            "input_rows_by_source": dict(merged.input_rows_by_source),
            "gaps_found": len(day.gaps),
            "ids_missing_before_fill": count_ids(day.gaps),
            "gaps_remaining": [list(r) for r in day.remaining[:20]],
            "duration_s": round(day.seconds, 3),
        },
        summary=(
            f"{day.frame.height:,} trades, {merged.duplicates_removed:,} duplicates removed, "
            f"{len(day.gaps)} gaps ({len(day.remaining)} left) in {day.seconds:.2f}s"
        ),
        pending=PendingWrite("trades", day.frame, partition, schemas.MARKET_PARTITION_COLUMNS),
        to_check=day,
    )


def build_trades_partition(
    key: PartitionKey, lake: Lake, binance: BinanceEndpoints | None
) -> PartitionResult:
    """Merge history and live trades for one day, fill holes from REST, check, and write
    the day only if every ERROR check passed (the asset does the same for a run's days,
    checking and committing them in batches)."""
    day = merge_trades_partition(key, lake, binance)
    result = merged_day_result(day)
    result.outcomes = check_merged_days({"day": day})["day"]
    return write_now(result, lake)


def quotes_day(key: PartitionKey, lake: Lake) -> PartitionResult:
    """One day of live quotes compacted, pending its write; `to_check` is the frame its
    checks read (the quotes with their spread)."""
    started = time.perf_counter()
    partition = key.lake_partition()
    frame = compact_quotes(lake.scan("ticks_quotes", schemas.QUOTES, **partition))
    checked = frame.with_columns(spread=pl.col("ask_price") - pl.col("bid_price"))
    seconds = time.perf_counter() - started
    return PartitionResult(
        metadata={"rows": frame.height, "duration_s": round(seconds, 3)},
        summary=f"{frame.height:,} quotes in {seconds:.2f}s",
        pending=PendingWrite("quotes", frame, partition, schemas.MARKET_PARTITION_COLUMNS),
        to_check=checked,
    )


def check_quotes_days(frames: Mapping[str, pl.DataFrame]) -> dict[str, list[CheckOutcome]]:
    """The checks of `quotes` for many days at once (a day without quotes has none)."""
    present = {name: frame for name, frame in frames.items() if frame.height}
    outcomes = run_checks_batch(present, QUOTES_CHECKS, dict.fromkeys(present))
    return {name: outcomes.get(name, []) for name in frames}


def build_quotes_partition(key: PartitionKey, lake: Lake) -> PartitionResult:
    """Compact one day of live quotes, check it, and write it only if the ERROR checks pass."""
    result = quotes_day(key, lake)
    result.outcomes = check_quotes_days({"day": result.to_check})["day"]
    return write_now(result, lake)


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
        histories: dg.ResourceParam[RestHistories],
        great_expectations: dg.ResourceParam[None],  # see great_expectations_process
    ):
        def work(key: PartitionKey) -> PartitionResult:
            """Merge only: the run's days are checked and committed in batches. The first
            day may have been merged already, while the command loaded Dagster."""
            day = take_merged(key, lake) or merge_trades_partition(key, lake, binance, histories)
            return merged_day_result(day)

        yield from materialize_partitions(context, TRADES_CHECKS, work, lake, check_merged_days)

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
    def quotes(
        context: dg.AssetExecutionContext,
        lake: dg.ResourceParam[Lake],
        great_expectations: dg.ResourceParam[None],  # see great_expectations_process
    ):
        yield from materialize_partitions(
            context, QUOTES_CHECKS, lambda key: quotes_day(key, lake), lake, check_quotes_days
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
