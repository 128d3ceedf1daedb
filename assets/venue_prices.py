"""`venue_prices_1m` in Dagster: one UTC day of every venue's trades and quotes, side by side.

The asset is partitioned by day alone: a day's row for ``BTC-USD spot`` needs Binance's,
Coinbase's, OKX's and Deribit's instrument-days at once. It depends on every instrument-day
of `trades` and `quotes` with that date (`MultiToSingleDimensionPartitionMapping` on the
``date`` dimension), and reads the venues from the lake's own ``exchange`` and ``symbol``
partition columns, never from a partition key.

Why a Polars asset and not a dbt_like_sql model: the engine runs a model for one
(exchange, symbol, date) partition, binding exactly those values (`dbt_like_sql.partition`),
and its refs read that one partition; a model that reads every venue of a date has no
partition it could be run for. The transform is `marketlake.side_by_side`, kept free of
Dagster and of I/O; this module reads, checks, writes and reports.

Instruments come from the symbols' syntax (`marketlake.instrument_specs.instrument_from_symbol`):
the build runs offline, as the rest of the daily build does. A run configured with
``instrument_lists`` (venue -> base URL) fetches those venues' lists first, so their
contracts' sizes are known and ``base_volume`` is filled; a list that can't be fetched fails
the run naming the URL, and nothing is written.
"""

import datetime as dt
import time
import warnings
from typing import Any

import dagster as dg
import polars as pl

from marketlake import side_by_side as sbs
from marketlake.instrument_fetch import fetch_instruments
from marketlake.instrument_specs import InstrumentSpec, by_symbol
from marketlake.lake import Lake
from marketlake.quality import CheckOutcome, blocking_failures
from marketlake.schemas import UTC_US

ASSET = sbs.TABLE


def by_date() -> dg.PartitionMapping:
    """Every instrument-day of a date, for that date: a Dagster beta relied on on purpose."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="date")


def day_partitions(instrument_days: dg.MultiPartitionsDefinition) -> dg.PartitionsDefinition:
    """The instrument-day partitions' own ``date`` dimension: the same days, start and end."""
    return instrument_days.get_partitions_def_for_dimension("date")


def read_day(lake: Lake, table: str, date: dt.date) -> pl.LazyFrame | None:
    """Every (exchange, symbol) partition of ``table`` dated ``date``; None if there is none."""
    if not lake.exists(table):
        return None
    wanted = [
        {"exchange": exchange, "symbol": symbol, "date": date}
        for exchange, symbol, day in sorted(
            lake.partition_values(table, ("exchange", "symbol", "date"))
        )
        if day == date.isoformat()
    ]
    return lake.read_partitions(table, wanted, refresh=False) if wanted else None


class VenuePricesConfig(dg.Config):
    #: Venue -> base URL of its instrument list (``{"okx": "https://www.okx.com"}``) to fetch
    #: before the build; venues not named here are read from their symbols' syntax.
    instrument_lists: dict[str, str] = {}  # noqa: RUF012 - pydantic copies defaults


def build_day(
    lake: Lake, date: dt.date, known: dict[tuple[str, str], InstrumentSpec] | None = None
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """One day's `venue_prices_1m` rows, and what the report says about them."""
    trades = read_day(lake, "trades", date)
    quotes = read_day(lake, "quotes", date)
    pairs: set[tuple[str, str]] = set()
    for frame in (trades, quotes):
        if frame is not None:
            pairs |= set(frame.select("exchange", "symbol").unique().collect().iter_rows())
    instruments, skipped = sbs.instruments_frame(pairs, known)
    empty_trades = pl.LazyFrame(
        schema={"exchange": pl.String, "symbol": pl.String, "ts": UTC_US,
                "trade_id": pl.Int64, "price": pl.Float64, "qty": pl.Float64}
    )  # fmt: skip
    empty_quotes = pl.LazyFrame(
        schema={"exchange": pl.String, "symbol": pl.String, "ts": UTC_US,
                "bid_price": pl.Float64, "ask_price": pl.Float64}
    )  # fmt: skip
    rows = sbs.venue_prices(
        trades if trades is not None else empty_trades,
        quotes if quotes is not None else empty_quotes,
        instruments,
        date,
    )
    gaps = rows.filter(pl.col("gap_bps").is_not_null())
    report = {
        "rows": rows.height,
        "venues": sorted(f"{e}:{s}" for e, s in instruments.select("exchange", "symbol").rows()),
        "instruments": sorted(set(instruments["instrument"])),
        "skipped_symbols": skipped,
        "from_instrument_lists": sorted(f"{e}:{s}" for e, s in pairs if (e, s) in (known or {})),
        "minutes_with_a_gap": gaps.select("instrument", "minute").n_unique() if gaps.height else 0,
        "largest_gap_bps": float(gaps["gap_bps"].max()) if gaps.height else None,
    }
    return rows, report


def build_venue_prices(instrument_days: dg.MultiPartitionsDefinition) -> dg.AssetsDefinition:
    days = day_partitions(instrument_days)

    @dg.asset(
        name=ASSET,
        group_name="daily",
        partitions_def=days,
        deps=[
            dg.AssetDep("trades", partition_mapping=by_date()),
            dg.AssetDep("quotes", partition_mapping=by_date()),
        ],
        check_specs=[
            dg.AssetCheckSpec(c.name, asset=ASSET, description=c.description, blocking=c.blocking)
            for c in sbs.CHECKS
        ],
        kinds={"polars", "delta"},
        metadata={"table": ASSET, "partitioned_by": "date"},
        description=(
            "Per normalized instrument (BTC-USD spot, BTC-USD perpetual, ...), minute and "
            "venue: trade VWAP, last price and mid; per instrument-minute the largest "
            "cross-venue VWAP gap in bps and the two venues that make it."
        ),
    )
    def venue_prices_1m(
        context: dg.AssetExecutionContext, config: VenuePricesConfig, lake: dg.ResourceParam[Lake]
    ):
        started = time.perf_counter()
        date = dt.date.fromisoformat(context.partition_key)
        known = {}
        for venue, url in sorted(config.instrument_lists.items()):
            known |= by_symbol(fetch_instruments(venue, url))
        rows, report = build_day(lake, date, known)
        outcomes = sbs.check_venue_prices(rows, date)
        refused = blocking_failures(outcomes)
        results = [_check_result(o) for o in outcomes]
        if refused:
            yield from results
            names = ", ".join(o.name for o in refused)
            raise dg.Failure(
                f"venue_prices_1m {date}: refused by its checks ({names}); the day's previous "
                "rows are kept",
                metadata={o.name: dg.MetadataValue.json(dict(o.metadata)) for o in refused},
            )
        version = lake.replace_partition(ASSET, rows, {"date": date}, sbs.PARTITION_COLUMNS)
        yield dg.MaterializeResult(
            metadata={
                **{k: _metadata(v) for k, v in report.items()},
                "delta_version": version,
                "seconds": round(time.perf_counter() - started, 3),
            },
            check_results=results,
        )

    return venue_prices_1m


def _check_result(outcome: CheckOutcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=outcome.name,
        asset_key=ASSET,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity(outcome.severity),
        metadata={k: _metadata(v) for k, v in outcome.metadata.items()},
    )


def _metadata(value: Any) -> Any:
    if isinstance(value, dict | list):
        return dg.MetadataValue.json(value)
    return value


def build_venue_prices_job(asset: dg.AssetsDefinition):
    return dg.define_asset_job(
        "venue_prices_job",
        selection=[asset],
        description="Build venue_prices_1m for UTC days (every venue's trades and quotes).",
    )


def build_venue_prices_schedule(job_name: str) -> dg.ScheduleDefinition:
    """Yesterday's day, after the daily build (00:15) and again after the archive refresh
    (06:00) has rebuilt `trades`. Its own job: a daily job of instrument-day partitions
    can't also run a day-partitioned asset (one partitions definition per asset job)."""

    @dg.schedule(
        name="venue_prices_schedule",
        job_name=job_name,
        cron_schedule="0 1,7 * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="01:00 and 07:00 UTC: yesterday's venue_prices_1m from every venue's "
        "trades and quotes.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        scheduled = context.scheduled_execution_time.astimezone(dt.UTC)
        day = (scheduled.date() - dt.timedelta(days=1)).isoformat()
        return dg.RunRequest(run_key=f"{day}@{scheduled:%H%M}", partition_key=day)

    return _schedule
