"""`trades_history`: one instrument-day of historic trades from the archive or REST.

The asset is a thin wrapper: `load_and_check_partition` fetches, fills archive gaps from
REST, runs the checks on the day's rows and, only if every ERROR check passed, replaces
exactly the partition in one Delta commit. None of it knows Dagster, so the CLI, tests and
benchmarks call the same code the UI does.
"""

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import dagster as dg
import polars as pl

from assets.partitioned import (
    PARTITIONS_PER_RUN,
    PartitionKey,
    PartitionResult,
    PendingWrite,
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
from assets.trades_history_checks import TRADES_HISTORY_CHECKS, TradeDay, check_frame
from marketlake import schemas
from marketlake.exchanges.binance.archive import ArchiveNotPublished, BinanceArchive
from marketlake.exchanges.binance.endpoints import BinanceEndpoints
from marketlake.exchanges.binance.rest import BinanceRest
from marketlake.lake import Lake
from marketlake.quality import (
    CheckOutcome,
    blocking_failures,
    load_in_background,
    run_checks_batch,
)

TABLE = "trades_history"
EXCHANGE = "binance"
SourceMode = Literal["archive", "rest", "auto"]


@dataclass
class PartitionLoad:
    """What loading one partition did: the rows written and how they were obtained."""

    symbol: str
    date: dt.date
    frame: pl.DataFrame
    source: str
    archive_lines: int | None = None
    bytes_downloaded: int = 0
    gaps_found: list[tuple[int, int]] = field(default_factory=list)
    rows_filled: int = 0
    version: int | None = None
    seconds: float = 0.0

    @property
    def written(self) -> bool:
        """Whether the rows were committed (False: an ERROR check refused them)."""
        return self.version is not None

    def metadata(self) -> dict[str, Any]:
        stats = summarize(self.frame)
        rows = stats["rows"]
        return {
            **{k: v for k, v in stats.items() if k not in ("first_ts", "last_ts")},
            "first_ts": str(stats.get("first_ts")),
            "last_ts": str(stats.get("last_ts")),
            "source": self.source,
            "archive_lines": self.archive_lines,
            "bytes_downloaded": self.bytes_downloaded,
            "gaps_found": len(self.gaps_found),
            "gap_ranges": [list(r) for r in self.gaps_found[:20]],
            "rows_filled_from_rest": self.rows_filled,
            "delta_version": self.version,
            "duration_s": round(self.seconds, 3),
            "rows_per_s": round(rows / self.seconds) if self.seconds > 0 else None,
        }


def load_and_check_partition(
    symbol: str,
    date: dt.date,
    *,
    lake: Lake,
    archive: BinanceArchive,
    rest: BinanceRest,
    source: SourceMode = "auto",
) -> tuple[PartitionLoad, list[CheckOutcome]]:
    """Fetch one instrument-day, fill its holes from REST, check it, and replace its Delta
    partition only if every ERROR check passed.

    Nothing is written unless the whole day was fetched and verified: a checksum mismatch,
    a corrupt zip or a REST failure raises before the commit, and rows that fail an ERROR
    check (an empty day, duplicated or conflicting ids, trades from another day...) are
    not committed: the previous rows stay, `load.written` is False and the outcomes say
    which checks failed. The checks run on the fetched frame before the write, one after
    the other: a 5M-trade day then peaks at 1.49 GiB RSS (`uv run --frozen python -m
    benchmarks --only backfill_memory`, checks before the write). Running them beside the
    write instead (the Rust writer releases the GIL) saved 0.25 s of 1.9 s but raised the
    peak to 1.96 GiB when measured, too close to the 2 GiB a busy day must stay under; and
    checks beside the write could not gate it.
    """
    load = fetch_partition(symbol, date, archive=archive, rest=rest, source=source)
    outcomes = check_partition(load)
    if not blocking_failures(outcomes):
        write_partition(load, lake)
    return load, outcomes


def fetch_partition(
    symbol: str,
    date: dt.date,
    *,
    archive: BinanceArchive,
    rest: BinanceRest,
    source: SourceMode = "auto",
) -> PartitionLoad:
    """The instrument-day's rows as they will be written, holes filled; nothing written yet."""
    started = time.perf_counter()
    symbol = schemas.normalize_symbol(symbol, EXCHANGE)
    ingested_at = dt.datetime.now(dt.UTC)
    load: PartitionLoad

    day = None
    if source in ("archive", "auto"):
        try:
            day = archive.fetch_day(symbol, date)
        except ArchiveNotPublished:
            if source == "archive":
                raise

    if day is not None:
        raw = day.trades.with_columns(source=pl.lit("archive"))
        gaps = missing_id_ranges(raw)
        if gaps:
            fills = [
                rest.trades_between_ids(symbol, first, last).with_columns(source=pl.lit("rest"))
                for first, last in gaps
            ]
            raw = fill_from(raw, pl.concat(fills))
        load = PartitionLoad(
            symbol,
            date,
            frame=pl.DataFrame(),
            source="archive+rest" if gaps else "archive",
            archive_lines=day.line_count,
            bytes_downloaded=day.bytes_downloaded,
            gaps_found=gaps,
            rows_filled=count_ids(gaps) if gaps else 0,
        )
    else:
        raw = rest.trades_for_day(symbol, date).with_columns(source=pl.lit("rest"))
        load = PartitionLoad(symbol, date, frame=pl.DataFrame(), source="rest")

    frame = with_lake_keys(
        raw,
        exchange=EXCHANGE,
        symbol=symbol,
        date=date,
        source=pl.col("source"),
        ingested_at=ingested_at,
    )
    load.frame = frame
    load.seconds = time.perf_counter() - started
    return load


def write_partition(load: PartitionLoad, lake: Lake) -> PartitionLoad:
    """Replace the load's partition with its frame in one Delta commit."""
    started = time.perf_counter()
    load.version = lake.replace_partition(
        TABLE,
        load.frame,
        {"exchange": EXCHANGE, "symbol": load.symbol, "date": load.date},
        schemas.MARKET_PARTITION_COLUMNS,
    )
    load.seconds += time.perf_counter() - started
    return load


def check_partition(load: PartitionLoad) -> list[CheckOutcome]:
    """Run the GE checks of `trades_history` on the rows about to be written."""
    return check_partitions({"day": load})["day"]


def check_partitions(loads: Mapping[str, PartitionLoad]) -> dict[str, list[CheckOutcome]]:
    """`check_partition` for many loads at once, in as few GE validations as it takes."""
    days = {key: TradeDay(load.date, load.archive_lines) for key, load in loads.items()}
    frames = {key: check_frame(load.frame, days[key]) for key, load in loads.items()}
    outcomes = run_checks_batch(frames, TRADES_HISTORY_CHECKS, days)
    for key, load in loads.items():
        if load.gaps_found:
            outcomes[key] = [
                _with_gap_report(o, load) if o.name == "trade_ids_contiguous" else o
                for o in outcomes[key]
            ]
    return outcomes


def _with_gap_report(outcome: CheckOutcome, load: PartitionLoad) -> CheckOutcome:
    remaining = missing_id_ranges(load.frame)
    return CheckOutcome(
        name=outcome.name,
        passed=outcome.passed,
        severity=outcome.severity,
        description=outcome.description,
        failing_rows=outcome.failing_rows,
        metadata={
            **outcome.metadata,
            "archive_gaps": [list(r) for r in load.gaps_found[:20]],
            "filled_from_rest": load.rows_filled,
            "missing_after_fill": [list(r) for r in remaining[:20]],
        },
    )


# --- Dagster wiring ---------------------------------------------------------------------------


class HistoryConfig(dg.Config):
    """Run configuration: where the trades come from."""

    source: SourceMode = "auto"


def build_trades_history(partitions_def: dg.MultiPartitionsDefinition) -> dg.AssetsDefinition:
    """The `trades_history` asset over `partitions_def` (date x symbol)."""

    @dg.asset(
        name=TABLE,
        group_name="history",
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.multi_run(PARTITIONS_PER_RUN),
        check_specs=check_specs(TABLE, TRADES_HISTORY_CHECKS, partitions_def),
        kinds={"polars", "deltalake"},
        description=(
            "Historic Binance spot trades per instrument-day, from the public archive "
            "(checksum-verified) or REST historicalTrades, holes filled from REST."
        ),
        metadata={"table": TABLE, "partitioned_by": list(schemas.MARKET_PARTITION_COLUMNS)},
    )
    def trades_history(
        context: dg.AssetExecutionContext,
        config: HistoryConfig,
        lake: dg.ResourceParam[Lake],
        binance: dg.ResourceParam[BinanceEndpoints],
    ):
        load_in_background()  # GE's import overlaps the first download instead of following it
        archive, rest = binance.archive(), binance.rest()

        loads: dict[str, PartitionLoad] = {}

        def work(key: PartitionKey) -> PartitionResult:
            """Fetch only: the run's days are checked and committed in batches."""
            if key.venue != EXCHANGE:
                raise ValueError(
                    f"{key}: trades_history holds Binance's archive and REST trades; "
                    f"{key.venue}'s days are built from their streamed ticks"
                )
            load = fetch_partition(
                key.symbol, key.date, archive=archive, rest=rest, source=config.source
            )
            loads[str(key)] = load
            return PartitionResult(
                metadata=load.metadata(),
                summary=f"{load.frame.height:,} rows from {load.source} fetched "
                f"in {load.seconds:.2f}s",
                pending=PendingWrite(
                    TABLE,
                    load.frame,
                    {"exchange": EXCHANGE, "symbol": load.symbol, "date": load.date},
                    schemas.MARKET_PARTITION_COLUMNS,
                ),
            )

        def check_batch(batch: dict[str, PartitionResult]) -> None:
            taken = {key: loads.pop(key) for key in batch}  # the rows live on in `pending`
            for key, outcomes in check_partitions(taken).items():
                batch[key].outcomes = outcomes
                batch[key].written = not blocking_failures(outcomes)

        yield from materialize_partitions(
            context, TRADES_HISTORY_CHECKS, work, lake, check_batch=check_batch
        )

    return trades_history
