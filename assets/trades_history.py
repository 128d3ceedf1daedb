"""`trades_history`: one instrument-day of historic trades from the archive or REST.

Each venue reads what it serves (`marketlake.exchanges.registry.Venue.history`): Binance its
daily archive, holes and unpublished days from REST; OKX and Deribit their REST trade
histories alone (`RestHistories`); Coinbase nothing, its days come from the stream. The
asset is a thin wrapper: `load_and_check_partition` fetches, fills archive gaps from
REST, runs the checks on the day's rows and, only if every ERROR check passed, replaces
exactly the partition in one Delta commit. None of it knows Dagster, so the CLI, tests and
benchmarks call the same code the UI does.
"""

import datetime as dt
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Literal

import dagster as dg
import polars as pl

from assets.archive_prefetch import take_prefetched
from assets.partition_key import PartitionKey
from assets.partitioned import (
    PARTITIONS_PER_RUN,
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
from marketlake.exchanges.histories import DayHistory, RestHistories
from marketlake.exchanges.registry import Venue, venue
from marketlake.lake import Lake
from marketlake.quality import (
    CheckOutcome,
    blocking_failures,
    run_checks_batch,
)

TABLE = "trades_history"
EXCHANGE = "binance"  # the venue of a bare symbol, as everywhere
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
    exchange: str = EXCHANGE

    @property
    def written(self) -> bool:
        """Whether the rows were committed (False: an ERROR check refused them)."""
        return self.version is not None

    def partition(self) -> dict[str, Any]:
        """The Delta partition values of the load."""
        return {"exchange": self.exchange, "symbol": self.symbol, "date": self.date}

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
    archive: BinanceArchive | None,
    rest: DayHistory,
    source: SourceMode = "auto",
    exchange: str = EXCHANGE,
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
    load = fetch_partition(
        symbol, date, archive=archive, rest=rest, source=source, exchange=exchange
    )
    outcomes = check_partition(load)
    if not blocking_failures(outcomes):
        write_partition(load, lake)
    return load, outcomes


def fetch_partition(
    symbol: str,
    date: dt.date,
    *,
    archive: BinanceArchive | None,
    rest: DayHistory,
    source: SourceMode = "auto",
    exchange: str = EXCHANGE,
) -> PartitionLoad:
    """The instrument-day's rows as they will be written, holes filled; nothing written yet.

    `archive` is None for a venue that publishes none (OKX, Deribit): the day is then the
    venue's REST history of it, and asking for ``source="archive"`` is refused. An archive
    day the command already downloaded for this run (`assets.archive_prefetch`) is taken
    instead of downloaded again.
    """
    started = time.perf_counter()
    chosen = venue(exchange)
    symbol = chosen.normalize_symbol(symbol)
    check_source(chosen, source, f"{chosen.name}:{symbol} {date}")
    ingested_at = dt.datetime.now(dt.UTC)
    load: PartitionLoad

    day = None
    if archive is not None and source in ("archive", "auto"):
        try:
            prefetched = take_prefetched(archive, symbol, date)
            if prefetched is None:
                day = archive.fetch_day(symbol, date)
            else:  # downloaded while Dagster loaded: its seconds are still this day's work
                day, started = prefetched.day, started - prefetched.seconds
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
            exchange=chosen.name,
        )
    else:
        raw = rest.trades_for_day(symbol, date).with_columns(source=pl.lit("rest"))
        load = PartitionLoad(symbol, date, pl.DataFrame(), "rest", exchange=chosen.name)

    frame = with_lake_keys(
        raw,
        exchange=chosen.name,
        symbol=symbol,
        date=date,
        source=pl.col("source"),
        ingested_at=ingested_at,
    )
    load.frame = frame
    load.seconds = time.perf_counter() - started
    return load


def check_source(chosen: Venue, source: SourceMode, what: str) -> None:
    """Refuse, naming `what`, a source the venue does not serve (or any, for a venue that
    serves no history)."""
    if not chosen.history:
        raise ValueError(
            f"{what}: {chosen.title} serves no trade history to backfill; its days are "
            "built from their streamed ticks (`marketlake stream`, then `marketlake build`)"
        )
    if source != "auto" and source not in chosen.history:
        raise ValueError(
            f"{what}: {chosen.title} has no {source} of trades; its days come from "
            f"{chosen.history_detail} (source {' or '.join(chosen.history)}, or auto)"
        )


class HistoryClients:
    """The clients of one run, made on a venue's first day and closed with the run."""

    def __init__(self, binance: BinanceEndpoints, histories: RestHistories) -> None:
        self.binance, self.histories = binance, histories
        self._made: dict[str, tuple[BinanceArchive | None, DayHistory]] = {}
        self._closing = ExitStack()

    def of(self, exchange: str) -> tuple[BinanceArchive | None, DayHistory]:
        """(archive or None, REST history) of ``exchange``."""
        name = venue(exchange).name
        if name not in self._made:
            if name == "binance":
                archive, rest = self.binance.archive(), self.binance.rest()
                self._closing.callback(archive.close)
                self._made[name] = (archive, rest)
            else:
                self._made[name] = (None, self.histories.client(name))
            self._closing.callback(self._made[name][1].close)
        return self._made[name]

    def close(self) -> None:
        self._closing.close()


def write_partition(load: PartitionLoad, lake: Lake) -> PartitionLoad:
    """Replace the load's partition with its frame in one Delta commit."""
    started = time.perf_counter()
    load.version = lake.replace_partition(
        TABLE, load.frame, load.partition(), schemas.MARKET_PARTITION_COLUMNS
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
            "Historic trades per instrument-day: Binance's from its public archive "
            "(checksum-verified) or REST historicalTrades, holes filled from REST; OKX's and "
            "Deribit's from their REST trade histories."
        ),
        metadata={"table": TABLE, "partitioned_by": list(schemas.MARKET_PARTITION_COLUMNS)},
    )
    def trades_history(
        context: dg.AssetExecutionContext,
        config: HistoryConfig,
        lake: dg.ResourceParam[Lake],
        binance: dg.ResourceParam[BinanceEndpoints],
        histories: dg.ResourceParam[RestHistories],
        great_expectations: dg.ResourceParam[None],  # see great_expectations_process
    ):
        clients = HistoryClients(binance, histories)

        def work(key: PartitionKey) -> PartitionResult:
            """Fetch only: the run's days are checked and committed in batches."""
            check_source(venue(key.venue), config.source, str(key))
            archive, rest = clients.of(key.venue)
            load = fetch_partition(
                key.symbol,
                key.date,
                archive=archive,
                rest=rest,
                source=config.source,
                exchange=key.venue,
            )
            return PartitionResult(
                metadata=load.metadata(),
                summary=f"{load.frame.height:,} rows from {load.source} fetched "
                f"in {load.seconds:.2f}s",
                pending=PendingWrite(
                    TABLE, load.frame, load.partition(), schemas.MARKET_PARTITION_COLUMNS
                ),
                to_check=load,
            )

        try:
            yield from materialize_partitions(
                context, TRADES_HISTORY_CHECKS, work, lake, check_batch=check_partitions
            )
        finally:
            clients.close()

    return trades_history
