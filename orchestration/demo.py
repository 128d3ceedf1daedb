"""`marketlake demo`: the whole platform on one machine, offline, in about a minute.

simulator -> backfill -> stream -> compact -> aggregate, then what landed and where to look.
The exchange is the local simulator (archive + REST + websockets on 127.0.0.1); the lake
and the Dagster instance are folders under the working directory.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import polars as pl
from rich.console import Console
from rich.table import Table

from marketlake.instruments import SEPARATOR, Instrument
from marketlake.lake import Lake
from orchestration.partition_runs import backfill, build
from orchestration.report import cell
from orchestration.serve import DEMO_SIM_TRADES_PER_DAY
from orchestration.settings import Settings
from orchestration.stream_cli import print_stats, stream

STREAM_SECONDS = 15


def run_demo(
    *,
    lake: str,
    instruments: Sequence[Instrument],
    start: dt.date,
    days: int,
    console: Console,
    out: Console,
) -> int:
    from marketlake.simulator.data import SimConfig
    from marketlake.simulator.server import Simulator
    from marketlake.simulator.websocket import WsSimulator

    symbols = [i.symbol for i in instruments]  # the simulator is a Binance
    end = start + dt.timedelta(days=days - 1)
    today = dt.datetime.now(dt.UTC).date()
    config = SimConfig(trades_per_day=DEMO_SIM_TRADES_PER_DAY, symbols=tuple(symbols))
    with Simulator(config) as http, WsSimulator(config) as ws:
        console.rule("[bold]1/4 the local exchange")
        console.print(f"archive + REST on {http.base_url}, websockets on {ws.url}")
        settings = dataclasses.replace(
            Settings.from_env({}),
            lake=lake,
            binance_archive_url=http.base_url,
            binance_rest_url=http.base_url,
            binance_ws_url=ws.url,
            instruments=tuple(instruments),
            start_date=min(start, Settings().start_date),
        )
        named = ", ".join(map(str, instruments))
        console.rule(f"[bold]2/4 backfill {named} {start} .. {end}")
        history = backfill(settings, instruments, start, end, console=console)
        history.print(out)

        console.rule(f"[bold]3/4 stream live ticks for {STREAM_SECONDS}s")
        stats = stream(
            settings,
            symbols,
            exchange="binance",
            duration=STREAM_SECONDS,
            capture=None,
            console=console,
        )
        print_stats(stats, out)

        console.rule("[bold]4/4 compact and aggregate: trades, quotes, bars, spread, summary")
        daily = build(settings, instruments, start, end, console=console)
        daily.print(out)
        live = build(settings, instruments, today, today, console=console, allow_today=True)
        live.print(out)

    _show(Lake(settings.lake), instruments, today, out)
    root = Path(settings.lake).absolute()
    out.print(
        "\n[bold]Where to look[/]\n"
        "  Polars:     import marketlake as ml   (README: Reading the lake)\n"
        f"              ml.bars('{symbols[0]}', '{start}', freq='5m').collect()\n"
        f"              with MARKETLAKE_LAKE={root}\n"
        f"  CLI:        uv run marketlake show bars {symbols[0]} {start} --freq 1h\n"
        f"              uv run marketlake report {symbols[0]} {start}\n"
        "  Dagster UI: make ui, then http://127.0.0.1:3000: Catalog (assets, checks,\n"
        "              charts), Runs -> Backfills, the stream_supervisor sensor;\n"
        "              the runs above are already there."
    )
    return 0 if history.ok and daily.ok and live.ok else 1


def _show(lake: Lake, instruments: Sequence[Instrument], today: dt.date, out: Console) -> None:
    """The daily summaries of `instruments` (the demo's share one venue, named in the title,
    so the table fits a terminal)."""
    instrument = pl.concat_str(["exchange", "symbol"], separator=SEPARATOR).alias("instrument")
    venues = sorted({i.venue for i in instruments})
    summary = (
        lake.scan("daily_summary")
        .with_columns(instrument)
        .filter(pl.col("instrument").is_in([str(i) for i in instruments]))
        .sort("instrument", "date")
        .select(
            "symbol" if len(venues) == 1 else "instrument",
            "date",
            "trades",
            pl.col("vwap").round(2),
            "open",
            "close",
            pl.col("spread_mean").round(4),
            "sources",
        )
        .collect()
    )
    table = Table(
        title=f"{lake.uri}/daily_summary, {', '.join(venues)} "
        f"(today, {today}, is the live day so far)",
        title_justify="left",
    )
    for column in summary.columns:
        table.add_column(column, justify="right")
    for row in summary.iter_rows():
        table.add_row(*(cell(v) for v in row))
    out.print(table)
