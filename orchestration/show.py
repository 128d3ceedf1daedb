"""`marketlake show`: one instrument-day of a table, for people (a table) or scripts."""

from __future__ import annotations

import datetime as dt
import sys

import polars as pl
from rich.console import Console
from rich.table import Table

from marketlake.lake import Lake
from marketlake.schemas import normalize_symbol
from orchestration.errors import UsageError
from orchestration.report import cell
from orchestration.settings import Settings

TABLES = {"spread": "spread_1m", "summary": "daily_summary", "trades": "trades"}


def table_name(table: str, freq: str) -> str:
    return f"bars_{freq}" if table == "bars" else TABLES[table]


def read_day(lake: Lake, table: str, symbol: str, date: dt.date) -> pl.DataFrame:
    """One instrument-day of `table`, in time order, read with partition pruning."""
    if not lake.exists(table):
        raise UsageError(
            f"{lake.table_uri(table)} does not exist yet: run `marketlake build` first"
        )
    exchange = "coinbase" if "-" in symbol else "binance"
    frame = lake.scan(table, exchange=exchange, symbol=symbol, date=date).collect()
    order = next((c for c in ("minute", "ts", "trade_id") if c in frame.columns), None)
    return frame.sort(order) if order else frame


def show(
    settings: Settings,
    *,
    table: str,
    symbol: str,
    date: dt.date,
    freq: str,
    fmt: str,
    output: str | None,
    limit: int | None,
    out: Console,
) -> int:
    symbol = normalize_symbol(symbol, "coinbase" if "-" in symbol else "binance")
    name = table_name(table, freq)
    frame = read_day(Lake(settings.lake, settings.lake_storage_options), name, symbol, date)
    if limit is not None:
        frame = frame.head(limit)
    if fmt == "parquet":
        if output is None:
            raise UsageError("--format parquet needs --output FILE")
        frame.write_parquet(output)
    elif fmt in ("csv", "json"):
        target = output or sys.stdout
        text = frame.write_csv() if fmt == "csv" else frame.write_json()
        if output:
            with open(output, "w") as handle:
                handle.write(text)
        else:
            target.write(text + ("" if text.endswith("\n") else "\n"))
    else:
        _print_table(frame, f"{name} {symbol} {date} ({frame.height:,} rows)", out)
    return 0


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
