"""`marketlake demo`: the whole platform on one machine, offline, in about a minute.

Starts the local exchange simulator on loopback, backfills a few symbol-days through the
`trades_history` asset into a Delta lake under the working tree, then shows what landed
and where to look next.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import polars as pl
from rich.console import Console
from rich.table import Table

from marketlake.lake import Lake
from orchestration.runner import backfill, build
from orchestration.settings import Settings

#: Modest days, so the demo is quick; the benchmarks go to millions.
DEMO_TRADES_PER_DAY = 50_000


def run_demo(
    *,
    lake: str,
    symbols: Sequence[str],
    start: dt.date,
    days: int,
    console: Console,
    out: Console,
) -> int:
    from marketlake.simulator.data import SimConfig
    from marketlake.simulator.server import Simulator

    end = start + dt.timedelta(days=days - 1)
    config = SimConfig(trades_per_day=DEMO_TRADES_PER_DAY, symbols=tuple(symbols))
    with Simulator(config) as simulator:
        console.print(f"[bold]1/3[/] exchange simulator on {simulator.base_url}")
        settings = dataclasses.replace(
            Settings.from_env({}),
            lake=lake,
            binance_archive_url=simulator.base_url,
            binance_rest_url=simulator.base_url,
            symbols=tuple(symbols),
            start_date=min(start, Settings().start_date),
        )
        console.print(
            f"[bold]2/3[/] backfill {', '.join(symbols)} {start} .. {end} into {settings.lake}"
        )
        history = backfill(settings, symbols, start, end, console=console)
        history.print(out)
        console.print(
            "[bold]3/3[/] build trades, quotes and the SQL models (bars, spread, summary)"
        )
        daily = build(settings, symbols, start, end, console=console)
        daily.print(out)

    _show_lake(Lake(settings.lake), out)
    out.print(
        "\n[bold]Where to look[/]\n"
        f"  Polars:     pl.scan_delta('{Path(settings.lake).absolute()}/trades_history')\n"
        "  Dagster UI: make ui   (then open http://127.0.0.1:3000: assets, checks, backfills)\n"
        f"  CLI:        uv run marketlake show bars {symbols[0]} {start} --freq 1h\n"
        "              uv run marketlake backfill BTCUSDT --start 2024-03-04 --end 2024-03-05"
    )
    return 0 if history.ok and daily.ok else 1


def _show_lake(lake: Lake, out: Console) -> None:
    summary = (
        lake.scan("trades_history")
        .group_by("symbol", "date")
        .agg(
            rows=pl.len(),
            first_id=pl.col("trade_id").min(),
            last_id=pl.col("trade_id").max(),
            vwap=(pl.col("price") * pl.col("qty")).sum() / pl.col("qty").sum(),
        )
        .sort("symbol", "date")
        .collect()
    )
    table = Table(title=f"{lake.uri}/trades_history, read back with Polars", title_justify="left")
    for column in summary.columns:
        table.add_column(column, justify="right")
    for row in summary.iter_rows():
        table.add_row(*(f"{v:,.4f}" if isinstance(v, float) else str(v) for v in row))
    out.print(table)
