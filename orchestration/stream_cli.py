"""`marketlake stream`: the lander in the foreground, with a status line every few seconds."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from pathlib import Path

from rich.console import Console

from marketlake.instruments import parse_instruments
from orchestration.errors import UsageError
from orchestration.resources import live_endpoints
from orchestration.settings import Settings
from orchestration.validation import check_lake


def parse_stream_symbols(values: Iterable[str], exchange: str) -> tuple[str, list[str]]:
    """(venue, symbols) of comma- or space-separated instruments: bare symbols are on
    ``exchange``, qualified ones (``okx:BTC-USDT``) on theirs; one process lands one venue."""
    instruments = parse_instruments(values, exchange)
    venues = sorted({i.venue for i in instruments})
    if len(venues) > 1:
        raise UsageError(
            f"one stream lands one venue, these name {len(venues)} "
            f"({', '.join(map(str, instruments))}): run a `marketlake stream` per venue"
        )
    return venues[0], [i.symbol for i in instruments]


def status_line(status) -> str:
    rows = status.rows_landed
    lag = "-" if status.receive_lag_ms is None else f"{status.receive_lag_ms:,.0f} ms"
    land = "-" if status.land_lag_ms is None else f"{status.land_lag_ms:,.0f} ms"
    return (
        f"{dt.datetime.now(dt.UTC):%H:%M:%S} "
        f"{status.messages_per_s:,.0f} msg/s  "
        f"trades {rows.get('ticks_trades', 0):,}  quotes {rows.get('ticks_quotes', 0):,}  "
        f"depth {rows.get('ticks_depth', 0):,}  lag {lag} +{land}  "
        f"reconnects {status.reconnects}  gaps {status.gaps_filled}/{status.gaps}  "
        f"quarantined {status.quarantined}  {status.drops}"
        + (
            f"  books out of sync {status.book_breaks} (resynced {status.book_resyncs})"
            if status.book_breaks
            else ""
        )
    )


def stream(
    settings: Settings,
    symbols: Sequence[str],
    *,
    exchange: str,
    duration: float | None,
    capture: str | None,
    console: Console,
    status_interval_s: float = 5.0,
    name: str | None = None,
):
    """Land `symbols` until `duration` ends, Ctrl-C or SIGTERM; flush, then return the stats.

    `name` keeps the checkpoint of each process landing one exchange apart (a stream sharded
    by symbol over several processes); None is the exchange's name.
    """
    from streaming import run_stream

    exchange, symbols = parse_stream_symbols(symbols, exchange)
    check_lake(settings.open_lake())
    config = live_endpoints(settings).stream_config(
        exchange,
        symbols,
        settings.open_lake(),
        duration_s=duration,
        capture=Path(capture) if capture else None,
        status_callback=lambda status: console.print(status_line(status), highlight=False),
        status_interval_s=status_interval_s,
        name=name,
    )
    console.print(
        f"landing {exchange} {', '.join(symbols)} from {config.ws_url} into {settings.lake}"
        + (f" for {duration:g}s" if duration else " (Ctrl-C to stop)")
    )
    return run_stream(config)


def print_stats(stats, out: Console) -> None:
    rows = ", ".join(f"{t} {n:,}" for t, n in sorted(stats.rows_landed.items())) or "nothing"
    out.print(
        f"landed {rows} from {stats.messages:,} messages in {stats.elapsed_s:.1f}s; "
        f"reconnects {stats.reconnects}, gaps {stats.gaps} ({stats.gaps_filled} filled), "
        f"quarantined {stats.quarantined}; dropped {stats.duplicates} repeats, "
        f"{stats.outliers} id outliers"
        + (
            f"; books out of sync {stats.book_breaks}, resynced {stats.book_resyncs}"
            if stats.book_breaks
            else ""
        )
        + (
            f"; [red]{stats.unwritten_rows:,} rows spilled to {stats.spilled}[/]"
            if stats.unwritten_rows
            else ""
        )
    )
