"""`marketlake report`: an instrument-day (or a few) as one self-contained HTML file.

Gathers what a person checks about a day (the bars, the spread, the summary, the gaps the
merge found and how they were filled, and every check's latest result for that
instrument-day) from the lake and from the Dagster instance the CLI and the UI share, then
hands it to the pure renderer `marketlake.day_report`. Nothing is written but the file.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl

from marketlake.day_report import CheckResult, DayData, render
from marketlake.instruments import Instrument
from marketlake.lake import Lake
from orchestration.errors import CommandFailed, UsageError, one_line
from orchestration.settings import Settings

#: More days than this make a page nobody scrolls through; a week is the usual ask.
MAX_DAYS = 31
#: The order the report lists the checks in: the way data flows.
CHECKED_ASSETS = (
    "trades_history", "trades", "quotes", "bars_1m", "bars_1h", "bars_1d", "spread_1m",
    "daily_summary",
)  # fmt: skip


def default_output(instrument: Instrument, start: dt.date, end: dt.date) -> Path:
    span = start.isoformat() if start == end else f"{start}_{end}"
    return Path(f"report-{instrument.venue}-{instrument.symbol}-{span}.html")


def write_report(
    settings: Settings,
    *,
    instrument: Instrument,
    start: dt.date,
    end: dt.date | None,
    output: str | None,
) -> tuple[Path, list[dt.date]]:
    """Write the report; the file written and the days of the range that had no data."""
    exchange, symbol = instrument.venue, instrument.symbol
    end = end or start
    if end < start:
        raise UsageError(f"--end {end} is before the date {start}")
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    if len(days) > MAX_DAYS:
        raise UsageError(f"{len(days)} days asked; a report covers at most {MAX_DAYS}")
    path = Path(output) if output else default_output(instrument, start, end)
    if path.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"--out {path}: the report is HTML, give a .html file name")
    if path.is_dir():
        raise UsageError(f"--out {path} is a folder: give a file name")
    if not path.parent.is_dir():
        raise UsageError(f"--out {path}: folder {path.parent} does not exist")

    lake = settings.open_lake()
    try:
        found = _known_symbol(lake, exchange, symbol)
        data = {day: _day(lake, exchange, symbol, day) for day in days}
    except OSError as error:
        raise CommandFailed(f"cannot read the lake {settings.lake}: {one_line(error)}") from None
    present = [data[day] for day in days if data[day] is not None]
    missing = [day for day in days if data[day] is None]
    if not present:
        span = str(start) if start == end else f"{start} to {end}"
        raise CommandFailed(
            f"no data for {instrument} on {span} in {lake.table_uri('bars_1m')} "
            f"(it has {found}): not built yet? (`marketlake build {instrument} --start {start}"
            + (f" --end {end}`)" if end != start else "`)")
        )
    _add_instance_records(settings, present)
    html = render(present, missing=missing)
    partial = path.with_name(f".{path.name}.partial")  # a failed write leaves the old file
    try:
        partial.write_text(html, encoding="utf-8")
        partial.replace(path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise CommandFailed(f"cannot write {path}: {error.strerror or error}") from None
    return path, missing


def _known_symbol(lake: Lake, exchange: str, symbol: str) -> str:
    """The days the lake's bars hold for `symbol`, said in a few words; an unknown symbol
    is refused naming the symbols the lake has."""
    if not lake.exists("bars_1m"):
        raise CommandFailed(
            f"{lake.table_uri('bars_1m')} does not exist yet: run `marketlake build` first"
        )
    held = lake.partition_values("bars_1m", ("exchange", "symbol", "date"))  # the file index
    days = sorted(d for e, s, d in held if (e, s) == (exchange, symbol))
    if not days:
        held_instruments = sorted({str(Instrument(e, s)) for e, s, _ in held})
        raise UsageError(
            f"unknown instrument {exchange}:{symbol}: the lake's bars hold "
            + (", ".join(held_instruments) if held_instruments else "no instrument yet")
        )
    return f"{len(days)} day(s) of {exchange}:{symbol}, {days[0]} to {days[-1]}"


def _day(lake: Lake, exchange: str, symbol: str, day: dt.date) -> DayData | None:
    partition = {"exchange": exchange, "symbol": symbol, "date": day}
    bars = lake.scan("bars_1m", **partition).collect()
    if bars.is_empty():
        return None
    spread = (
        lake.scan("spread_1m", **partition).collect()
        if lake.exists("spread_1m")
        else pl.DataFrame(schema={"minute": pl.Datetime("us", "UTC")})
    )
    summary = None
    if lake.exists("daily_summary"):
        rows = lake.scan("daily_summary", **partition).collect()
        summary = rows.row(0, named=True) if rows.height else None
    by_source: dict[str, int] = {}
    if lake.exists("trades"):
        counts = lake.scan("trades", **partition).group_by("source").len().collect()
        by_source = dict(zip(counts["source"], counts["len"], strict=True))
    events = None
    if lake.exists("stream_events"):
        events = (
            lake.scan("stream_events", date=day)
            .filter(
                pl.col("exchange") == exchange,
                pl.col("symbol") == symbol,
                pl.col("kind").str.starts_with("gap"),
            )
            .select("ts", "kind", "detail")
            .collect()
        )
    return DayData(
        symbol=symbol,
        exchange=exchange,
        date=day,
        bars=bars,
        spread=spread,
        summary=summary,
        trades_by_source=by_source,
        gap_events=events,
    )


def _add_instance_records(settings: Settings, days: list[DayData]) -> None:
    """The latest `trades` materialization's merge figures and every check's latest result,
    per instrument-day, from the Dagster instance the CLI and the UI share."""
    import dagster as dg
    from dagster._core.event_api import PartitionKeyFilter  # not re-exported by `dagster`

    from orchestration.definitions import build_definitions
    from orchestration.instance import local_instance
    from orchestration.partitions import check_migrated

    check_keys = sorted(
        build_definitions(settings).resolve_asset_graph().asset_check_keys, key=_order
    )
    instance = local_instance()
    check_migrated(instance)
    for day in days:
        partition = f"{day.date.isoformat()}|{Instrument(day.exchange, day.symbol)}"
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("trades"), asset_partitions=[partition]),
            limit=1,
        ).records
        if records:
            metadata = records[0].asset_materialization.metadata
            day.merge = {k: v.value for k, v in metadata.items()}
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            check_keys, partition_filter=PartitionKeyFilter(key=partition)
        )
        day.checks = [_check_result(latest[key]) for key in check_keys if key in latest]


def _order(key) -> tuple[int, str, str]:
    """Checks in the order data flows, then by name."""
    asset = key.asset_key.to_user_string()
    rank = CHECKED_ASSETS.index(asset) if asset in CHECKED_ASSETS else len(CHECKED_ASSETS)
    return rank, asset, key.name


def _check_result(record: Any) -> CheckResult:
    asset = record.key.asset_key.to_user_string()
    evaluation = record.event.dagster_event.event_specific_data if record.event else None
    if record.status.value == "PLANNED" or evaluation is None:
        return CheckResult(asset, record.key.name, None, "")
    metadata = {k: v.value for k, v in evaluation.metadata.items()}
    return CheckResult(
        asset=asset,
        name=record.key.name,
        passed=evaluation.passed,
        severity=evaluation.severity.value,
        description=evaluation.description or "",
        failing_rows=metadata.get("failing_rows"),
        evaluated_at=dt.datetime.fromtimestamp(record.create_timestamp, dt.UTC),
    )
