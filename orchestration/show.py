"""`marketlake show`: one instrument-day of a table, for people (a table) or scripts."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import polars as pl
from rich.console import Console
from rich.table import Table

from marketlake.instruments import Instrument
from marketlake.lake import Lake
from orchestration.errors import CommandFailed, UsageError, one_line
from orchestration.report import cell
from orchestration.settings import Settings

TABLES = {"spread": "spread_1m", "summary": "daily_summary", "trades": "trades"}


def table_name(table: str, freq: str) -> str:
    return f"bars_{freq}" if table == "bars" else TABLES[table]


def read_day(lake: Lake, table: str, instrument: Instrument, date: dt.date) -> pl.DataFrame:
    """One instrument-day of `table`, in time order, read with partition pruning."""
    if not lake.exists(table):
        raise UsageError(
            f"{lake.table_uri(table)} does not exist yet: run `marketlake build` first"
        )
    exchange, symbol = instrument.venue, instrument.symbol
    frame = lake.scan(table, exchange=exchange, symbol=symbol, date=date).collect()
    if frame.is_empty():
        raise CommandFailed(
            f"{lake.table_uri(table)} has no partition {exchange}/{symbol}/{date}: "
            f"not built yet? (`marketlake build {instrument} --start {date}`)"
        )
    order = next((c for c in ("minute", "ts", "trade_id") if c in frame.columns), None)
    return frame.sort(order) if order else frame


def show(
    settings: Settings,
    *,
    table: str,
    instrument: Instrument,
    date: dt.date,
    freq: str,
    fmt: str,
    output: str | None,
    limit: int | None,
    out: Console,
) -> int:
    name = table_name(table, freq)
    if fmt == "parquet" and output is None:
        raise UsageError("--format parquet needs --output FILE")
    if output is not None:
        check_output(Path(output))
    lake = settings.open_lake()
    try:
        frame = read_day(lake, name, instrument, date)
    except OSError as error:  # the object store or the file system, after its own retries
        raise CommandFailed(f"cannot read {lake.table_uri(name)}: {one_line(error)}") from None
    if limit is not None:
        frame = frame.head(limit)
    if fmt in ("parquet", "csv", "json"):
        _write(frame, fmt, output)
    else:
        _print_table(frame, f"{name} {instrument} {date} ({frame.height:,} rows)", out)
    return 0


def check_output(path: Path) -> None:
    """Refuse an --output the command could never write, before reading anything."""
    if path.is_dir():
        raise UsageError(f"--output {path} is a folder: give a file name")
    if not path.parent.is_dir():
        raise UsageError(f"--output {path}: folder {path.parent} does not exist")


def _write(frame: pl.DataFrame, fmt: str, output: str | None) -> None:
    try:
        if fmt == "parquet":
            frame.write_parquet(output)
            return
        text = frame.write_csv() if fmt == "csv" else frame.write_json()
        if output:
            with open(output, "w") as handle:
                handle.write(text)
        else:
            sys.stdout.write(text + ("" if text.endswith("\n") else "\n"))
    except OSError as error:
        raise CommandFailed(f"cannot write {output}: {error.strerror or error}") from None


def _print_table(frame: pl.DataFrame, title: str, out: Console) -> None:
    table = Table(title=title, title_justify="left")
    shown = frame.drop([c for c in ("exchange", "symbol", "date") if c in frame.columns])
    for column in shown.columns:
        table.add_column(column, justify="right")
    for row in shown.head(60).iter_rows():
        table.add_row(*(cell(v) for v in row))
    out.print(table)
    if frame.height > 60:
        out.print(f"... {frame.height - 60:,} more rows (use --format csv for all of them)")
