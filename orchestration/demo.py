"""`marketlake demo`: the whole platform on one machine, offline, in about a minute.

simulator -> backfill -> stream -> compact -> aggregate, then what landed and where to look.
The exchange is the local simulator (archive + REST + websockets on 127.0.0.1); the lake
and the Dagster instance are folders under the working directory.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
from rich.console import Console
from rich.table import Table

from marketlake.instruments import SEPARATOR, Instrument
from marketlake.lake import Lake
from orchestration.partition_runs import backfill, build, build_venue_prices
from orchestration.report import cell
from orchestration.serve import DEMO_SIM_TRADES_PER_DAY
from orchestration.settings import Settings
from orchestration.stream_cli import print_stats, stream

STREAM_SECONDS = 15

#: What the demo streams beside its Binance instruments: the same coin on the other venues,
#: so that `venue_prices_1m` has venues to put side by side.
OTHER_VENUES = (
    Instrument("okx", "BTC-USDT"),
    Instrument("deribit", "BTC-PERPETUAL"),
    Instrument("coinbase", "BTC-USD"),
)


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

    symbols = [i.symbol for i in instruments]  # the archive is Binance's
    end = start + dt.timedelta(days=days - 1)
    today = dt.datetime.now(dt.UTC).date()
    others = [i for i in OTHER_VENUES if i not in instruments]
    config = SimConfig(
        trades_per_day=DEMO_SIM_TRADES_PER_DAY,
        symbols=tuple(dict.fromkeys([*symbols, *(i.symbol for i in others)])),
    )
    with Simulator(config) as http, WsSimulator(config) as ws:
        console.rule("[bold]1/4 the local exchange")
        console.print(f"archive + REST on {http.base_url}, websockets on {ws.url}")
        settings = dataclasses.replace(
            Settings.from_env({}),
            lake=lake,
            binance_archive_url=http.base_url,
            binance_rest_url=http.base_url,
            binance_ws_url=ws.url,
            coinbase_ws_url=ws.coinbase_url,
            okx_ws_url=ws.okx_url,
            okx_rest_url=http.base_url,
            deribit_ws_url=ws.deribit_url,
            deribit_rest_url=http.base_url,
            instruments=tuple(instruments),
            start_date=min(start, Settings().start_date),
        )
        named = ", ".join(map(str, instruments))
        console.rule(f"[bold]2/4 backfill {named} {start} .. {end}")
        history = backfill(settings, instruments, start, end, console=console)
        history.print(out)

        console.rule(f"[bold]3/4 stream live ticks for {STREAM_SECONDS}s, four venues at once")
        streams = {"binance": symbols} | {i.venue: [i.symbol] for i in others}
        with ThreadPoolExecutor(len(streams)) as pool:
            landed = [
                pool.submit(
                    stream,
                    settings,
                    venue_symbols,
                    exchange=venue,
                    duration=STREAM_SECONDS,
                    capture=None,
                    console=console,
                    status_interval_s=STREAM_SECONDS,
                )
                for venue, venue_symbols in streams.items()
            ]
            for future in landed:
                print_stats(future.result(), out)

        console.rule("[bold]4/4 compact and aggregate: trades, quotes, bars, spread, summary")
        daily = build(settings, instruments, start, end, console=console)
        daily.print(out)
        everyone = [*instruments, *others]
        live = build(settings, everyone, today, today, console=console, allow_today=True)
        live.print(out)
        side_by_side = build_venue_prices(settings, [today], console=console)

    _show(Lake(settings.lake), instruments, today, out)
    _show_venue_prices(Lake(settings.lake), today, out)
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
    return 0 if history.ok and daily.ok and live.ok and side_by_side else 1


def _show_venue_prices(lake: Lake, today: dt.date, out: Console, minutes: int = 6) -> None:
    """The last minutes of today's `venue_prices_1m`: each venue's VWAP and mid, and the
    largest gap between venues, with the two venues that make it."""
    if not lake.exists("venue_prices_1m"):
        return
    rows = (
        lake.scan("venue_prices_1m")
        .filter(pl.col("date") == today)
        .filter(pl.col("minute") >= pl.col("minute").max() - dt.timedelta(minutes=minutes - 1))
        .sort("instrument", "minute", "exchange")
        .select(
            "instrument",
            pl.col("minute").dt.strftime("%H:%M"),
            pl.col("exchange").alias("venue"),
            pl.col("vwap").round(2),
            pl.col("mid").round(2),
            pl.col("gap_bps").round(1).alias("gap bps"),
            pl.concat_str(
                [pl.col(f"gap_{end}_venue").str.split(":").list.first() for end in ("low", "high")],
                separator="<",
            ).alias("gap between"),
        )
        .collect()
    )
    table = Table(title=f"{lake.uri}/venue_prices_1m, today's last minutes", title_justify="left")
    for column in rows.columns:
        numeric = column in ("vwap", "mid", "gap bps")
        table.add_column(column, justify="right" if numeric else "left")
    for row in rows.iter_rows():
        table.add_row(*(cell(v) for v in row))
    out.print(table)


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
