"""The `marketlake` command.

`backfill` (and `build`) drive the same Dagster assets the UI does, in-process, against the
same Dagster instance (`$DAGSTER_HOME`, default `./.dagster_home`), so a run started here
shows in the UI like any other. Arguments are validated before anything is fetched or
written: a bad symbol, date or range exits with status 2 and a message naming it.

Instruments are given as the venue spells them, on `--exchange` (Binance unless told):
`marketlake build BTCUSDT`, `marketlake show bars --exchange okx BTC-USDT 2024-03-01`, or
qualified, `okx:BTC-USDT`; output names them qualified.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
from collections.abc import Sequence

from rich.console import Console

from marketlake.exchanges.registry import VENUES
from marketlake.instruments import Instrument, parse_instruments
from marketlake.schemas import InvalidSymbolError
from orchestration.errors import CommandFailed, UsageError

console = Console(stderr=True)
out = Console()


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except (UsageError, InvalidSymbolError) as error:
        console.print(f"[red]error:[/] {error}", highlight=False)
        return 2
    except CommandFailed as error:
        console.print(f"[red]error:[/] {error}", highlight=False)
        return 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="marketlake",
        description="Crypto market data into Delta Lake, orchestrated by Dagster.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    backfill = commands.add_parser(
        "backfill",
        help="load historic trades for instruments x days through the trades_history asset",
        description="Load historic trades for every instrument x day: Binance's archive (REST "
        "fallback), OKX's and Deribit's REST histories.",
    )
    _add_range_arguments(backfill)
    backfill.add_argument(
        "--source",
        choices=("auto", "archive", "rest"),
        default="auto",
        help="auto: the archive, REST when the archive has no file for the day (OKX and "
        "Deribit have no archive: REST)",
    )
    _add_lake_argument(backfill)
    backfill.set_defaults(run=_run_backfill)

    build = commands.add_parser(
        "build",
        help="build trades, quotes and every SQL model for instruments x days",
        description="Materialize the daily assets (trades, quotes, compaction, SQL models).",
    )
    _add_range_arguments(build)
    _add_lake_argument(build)
    build.set_defaults(run=_run_build)

    show = commands.add_parser(
        "show",
        help="print one instrument-day of a table (bars, spread, summary, trades)",
        description="Read one instrument-day from the lake and print it.",
    )
    show.add_argument("table", choices=("bars", "spread", "summary", "trades"))
    show.add_argument("symbol", help=INSTRUMENT_HELP)
    show.add_argument("date", type=_date)
    _add_exchange_argument(show)
    show.add_argument("--freq", choices=("1m", "1h", "1d"), default="1m", help="bar size")
    show.add_argument(
        "--format", choices=("table", "csv", "json", "parquet"), default="table", dest="fmt"
    )
    show.add_argument("--output", help="write to this file instead of standard output")
    show.add_argument(
        "--limit", type=_positive_int, default=None, help="at most this many rows (from the start)"
    )
    _add_lake_argument(show)
    show.set_defaults(run=_run_show)

    report = commands.add_parser(
        "report",
        help="write an instrument-day's charts, figures, gaps and checks as one HTML file",
        description="A self-contained HTML report (inline SVG and CSS, opens offline) of "
        "one instrument's day or days: candles with VWAP and volume, spread, trades per minute, "
        "the day's gaps and their fills, and every check's latest result.",
    )
    report.add_argument("symbol", help=INSTRUMENT_HELP)
    report.add_argument("date", type=_date, help="the day, YYYY-MM-DD")
    _add_exchange_argument(report)
    report.add_argument("--end", type=_date, help="last day, inclusive (default: the date)")
    report.add_argument(
        "--out", help="the HTML file (default ./report-VENUE-SYMBOL-DATE.html)", dest="output"
    )
    _add_lake_argument(report)
    report.set_defaults(run=_run_report)

    stream = commands.add_parser(
        "stream",
        help="land live trades, quotes and depth20 from a websocket into the lake",
        description="Land live ticks until --duration ends, Ctrl-C or SIGTERM (buffers flushed).",
    )
    stream.add_argument(
        "symbols",
        nargs="+",
        help="BTCUSDT ETHUSDT on --exchange, or qualified: okx:BTC-USDT (one venue per stream)",
    )
    _add_exchange_argument(stream)
    stream.add_argument(
        "--duration", type=_positive_seconds, default=None, help="seconds (default: forever)"
    )
    stream.add_argument("--capture", help="also write every raw message to this JSONL file")
    stream.add_argument(
        "--name",
        type=_stream_name,
        default=None,
        help="this stream's checkpoint name, one per process of an exchange (default: exchange)",
    )
    _add_lake_argument(stream)
    stream.set_defaults(run=_run_stream)

    vacuum = commands.add_parser(
        "vacuum",
        help="delete files no table version needs (orphans of killed writes included)",
        description="Full vacuum of every table: files the Delta log does not reference, "
        "older than the retention, are deleted.",
    )
    vacuum.add_argument(
        "--retention-hours",
        type=_positive_int,
        default=168,
        help="keep files younger than this (default 168, Delta's week)",
    )
    vacuum.add_argument("--dry-run", action="store_true", help="list the files, delete nothing")
    _add_lake_argument(vacuum)
    vacuum.set_defaults(run=_run_vacuum)

    symbols = commands.add_parser("symbols", help="list or add the instrument partitions")
    actions = symbols.add_subparsers(title="actions", metavar="ACTION", dest="action")
    actions.required = True
    actions.add_parser("list", help="print the instrument partitions, venue:SYMBOL")
    add = actions.add_parser("add", help="add instruments (Binance's checked against it)")
    add.add_argument("symbols", nargs="+", help=INSTRUMENTS_HELP)
    _add_exchange_argument(add)
    symbols.set_defaults(run=_run_symbols)

    migrate = commands.add_parser(
        "migrate",
        help="carry a Dagster instance's symbol partitions over to venue-qualified instruments",
        description="Once, on a Dagster instance from before partition keys named their "
        "venue: adds VENUE:SYMBOL for every legacy `symbols` partition and records each "
        "asset's latest materialization (and check results) under the new keys. Safe to "
        "run again; the lake needs no migration.",
    )
    migrate.set_defaults(run=_run_migrate)

    sim = commands.add_parser("sim", help="run the local exchange simulator on 127.0.0.1")
    sim.add_argument(
        "--port", type=_port, default=8765, help="archive + REST; websockets on PORT + 1"
    )
    sim.add_argument("--trades-per-day", type=int, default=None)
    sim.add_argument("--seed", type=int, default=None)
    sim.set_defaults(run=_run_sim)

    ui = commands.add_parser(
        "ui", help="start the Dagster UI and daemon (with the simulator unless URLs are set)"
    )
    ui.add_argument("--port", type=_port, default=3000)
    ui.add_argument("--sim-port", type=_port, default=8765)
    _add_lake_argument(ui)
    ui.set_defaults(run=_run_ui)

    demo = commands.add_parser(
        "demo", help="simulator -> backfill -> stream -> compact -> aggregate, then a summary"
    )
    demo.add_argument("--lake", default="./lake")
    demo.add_argument("--symbols", default="BTCUSDT,ETHUSDT", help="Binance symbols")
    demo.add_argument("--start", type=_date, default=dt.date(2024, 3, 1))
    demo.add_argument("--days", type=int, default=3)
    demo.set_defaults(run=_run_demo)
    return parser


def _add_range_arguments(parser: argparse.ArgumentParser) -> None:
    """The instruments x days a backfill or build covers."""
    parser.add_argument("symbols", nargs="+", help=INSTRUMENTS_HELP)
    _add_exchange_argument(parser)
    parser.add_argument("--start", required=True, type=_date, help="first day, YYYY-MM-DD")
    parser.add_argument("--end", type=_date, help="last day, inclusive (default: --start)")
    parser.add_argument(
        "--yes",
        action="store_true",
        help="run more than 400 partitions (instruments x days) in one command",
    )
    parser.add_argument(
        "--jobs",
        "-j",
        type=_positive_int,
        default=1,
        help="runs (a month of one instrument each) executed at once, each in its own process "
        "(default 1; up to the number of cores pays)",
    )


INSTRUMENT_HELP = "BTCUSDT (on --exchange), or qualified: okx:BTC-USDT"
INSTRUMENTS_HELP = "BTCUSDT,ETHUSDT or BTCUSDT ETHUSDT on --exchange, or qualified: okx:BTC-USDT"


def _add_exchange_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--exchange",
        choices=tuple(VENUES),
        default="binance",
        help="the venue of symbols given without one (default binance)",
    )


def _add_lake_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lake", help="lake URI (default $MARKETLAKE_LAKE or ./lake)")


def _port(text: str) -> int:
    """A TCP port for a server and the next one for its websockets: 1..65534."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"malformed port {text!r}: expected a number") from None
    if not 1 <= port <= 65534:
        raise argparse.ArgumentTypeError(
            f"port {port} is out of range: expected 1..65534 (PORT + 1 serves the websockets)"
        )
    return port


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"malformed number {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number of rows")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"malformed duration {text!r}: expected seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


def _stream_name(text: str) -> str:
    from streaming.state import state_uri

    try:
        state_uri("", text)  # the rule the checkpoint's file name follows
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid stream name {text!r}: letters, digits, '-' and '_'"
        ) from None
    return text


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"malformed date {text!r}: expected YYYY-MM-DD") from None


# --- shared set-up ----------------------------------------------------------------------------


def _settings(lake: str | None):
    from orchestration.settings import Settings

    settings = Settings.from_env()
    return dataclasses.replace(settings, lake=lake) if lake else settings


# --- commands ---------------------------------------------------------------------------------


def _run_backfill(args: argparse.Namespace) -> int:
    instruments = parse_instruments(args.symbols, args.exchange)
    end = args.end or args.start
    settings = _settings(args.lake)
    _start_checks_early(args.jobs)
    from orchestration.partition_runs import backfill

    report = backfill(
        settings, instruments, args.start, end, source=args.source, console=console,
        confirmed=args.yes, jobs=args.jobs,
    )  # fmt: skip
    return _exit_status(report)


def _run_build(args: argparse.Namespace) -> int:
    instruments = parse_instruments(args.symbols, args.exchange)
    settings = _settings(args.lake)
    _start_checks_early(args.jobs)
    from orchestration.partition_runs import build

    report = build(
        settings, instruments, args.start, args.end or args.start, console=console,
        confirmed=args.yes, jobs=args.jobs,
    )  # fmt: skip
    return _exit_status(report)


def _start_checks_early(jobs: int) -> None:
    """Start Great Expectations' process before Dagster is imported here, so its 4-5 s
    import runs on another core meanwhile (with --jobs N, each worker starts its own)."""
    if jobs == 1:
        from marketlake.quality import load_in_background

        load_in_background()


def _exit_status(report) -> int:
    """0 all done, 1 a partition failed, 130 Ctrl-C stopped the command (as a shell does)."""
    report.print(out)
    if report.interrupted:
        return 130
    return 0 if report.ok else 1


def _run_stream(args: argparse.Namespace) -> int:
    from orchestration.stream_cli import parse_stream_symbols, print_stats, stream

    exchange, symbols = parse_stream_symbols(args.symbols, args.exchange)
    stats = stream(
        _settings(args.lake),
        symbols,
        exchange=exchange,
        duration=args.duration,
        capture=args.capture,
        console=console,
        name=args.name,
    )
    print_stats(stats, out)
    return 0 if not stats.unwritten_rows else 1


def _run_show(args: argparse.Namespace) -> int:
    from orchestration.show import show

    return show(
        _settings(args.lake),
        table=args.table,
        instrument=Instrument.parse(args.symbol, args.exchange),
        date=args.date,
        freq=args.freq,
        fmt=args.fmt,
        output=args.output,
        limit=args.limit,
        out=out,
    )


def _run_report(args: argparse.Namespace) -> int:
    from orchestration.day_report import write_report

    path, missing = write_report(
        _settings(args.lake),
        instrument=Instrument.parse(args.symbol, args.exchange),
        start=args.date,
        end=args.end,
        output=args.output,
    )
    if missing:
        days = ", ".join(day.isoformat() for day in missing)
        console.print(f"[yellow]no data for {days}[/] (not built yet); the report leaves them out")
    out.print(f"report written to {path.resolve()}", highlight=False, soft_wrap=True)
    return 0


def _run_vacuum(args: argparse.Namespace) -> int:
    from orchestration.vacuum import vacuum_lake
    from orchestration.validation import check_lake

    lake = _settings(args.lake).open_lake()
    check_lake(lake)
    done = vacuum_lake(lake, retention_hours=args.retention_hours, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    for result in done:
        out.print(f"{result.table}: {verb} {len(result.files)} file(s)", highlight=False)
        for name in result.files:
            out.print(f"  {name}", highlight=False)
    return 0


def _run_symbols(args: argparse.Namespace) -> int:
    from orchestration.partition_runs import cli_instance
    from orchestration.partitions import check_migrated, instruments_of
    from orchestration.symbols import register_instruments

    instance = cli_instance(console)
    if args.action == "list":
        check_migrated(instance)
        for instrument in instruments_of(instance):
            out.print(str(instrument), highlight=False)
        return 0
    instruments = parse_instruments(args.symbols, args.exchange)
    added = register_instruments(instance, _settings(None).binance_endpoints(), instruments)
    out.print(f"added: {', '.join(map(str, added)) or 'nothing new'}", highlight=False)
    return 0


def _run_migrate(args: argparse.Namespace) -> int:
    from orchestration.migrate import migrate
    from orchestration.partition_runs import cli_instance

    migrate(cli_instance(console), _settings(None), out)
    return 0


def _run_sim(args: argparse.Namespace) -> int:
    from orchestration.serve import serve_simulator

    serve_simulator(args.port, trades_per_day=args.trades_per_day, seed=args.seed)
    return 0


def _run_ui(args: argparse.Namespace) -> int:
    from orchestration.serve import run_ui

    return run_ui(ui_port=args.port, sim_port=args.sim_port, lake=args.lake)


def _run_demo(args: argparse.Namespace) -> int:
    from orchestration.demo import run_demo

    return run_demo(
        lake=args.lake,
        instruments=parse_instruments([args.symbols]),
        start=args.start,
        days=args.days,
        console=console,
        out=out,
    )


if __name__ == "__main__":
    sys.exit(main())
