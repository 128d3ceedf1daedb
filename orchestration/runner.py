"""Driving the Dagster assets in-process, for the CLI, the demo and the benchmarks."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from orchestration.errors import UsageError
from orchestration.partitions import partition_keys, symbol_partitions
from orchestration.settings import Settings

#: In-process runs log warnings and errors only; progress is the progress bar's job.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def dagster_home() -> Path:
    """`$DAGSTER_HOME`, defaulting to `./.dagster_home`, so the CLI and the UI share runs."""
    home = Path(os.environ.get("DAGSTER_HOME") or ".dagster_home").absolute()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(LOCAL_INSTANCE_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def instance() -> dg.DagsterInstance:
    dagster_home()
    return dg.DagsterInstance.get()


def add_symbols(settings: Settings, symbols: Sequence[str]) -> list[str]:
    """Add `symbols` to the symbol partitions after checking Binance lists them."""
    from marketlake.exchanges.binance.endpoints import BinanceEndpoints

    endpoints = BinanceEndpoints(settings.binance_archive_url, settings.binance_rest_url)
    listed = endpoints.rest().symbols()
    unknown = [symbol for symbol in symbols if symbol not in listed]
    if unknown:
        raise UsageError(
            f"not listed on Binance ({settings.binance_rest_url}): {', '.join(unknown)}"
        )
    current = instance()
    existing = set(current.get_dynamic_partitions(symbol_partitions.name))
    new = [symbol for symbol in symbols if symbol not in existing]
    if new:
        current.add_dynamic_partitions(symbol_partitions.name, new)
    return new


#: The tables the build summary shows, the way data flows (every table is in the metadata).
BUILD_SHOWN = ("trades", "quotes", "bars_1m", "spread_1m", "daily_summary")

#: The local instance: SQLite under $DAGSTER_HOME (deploy/dagster.yaml is the production one).
LOCAL_INSTANCE_YAML = """# Local Dagster instance for marketlake (SQLite storage in this folder).
telemetry:
  enabled: false
"""


@dataclass
class PartitionOutcome:
    key: str
    ok: bool
    seconds: float
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Materialization metadata per asset name."""
    checks_passed: int = 0
    checks_failed: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class RunReport:
    title: str
    outcomes: list[PartitionOutcome]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(o.ok and not o.checks_failed for o in self.outcomes)

    def print(self, console: Console) -> None:
        if self.title == "backfill":
            self._print_history(console)
        else:
            self._print_build(console)
        failed = [o.key for o in self.outcomes if not o.ok]
        console.print(
            f"{len(self.outcomes)} partitions in {self.seconds:.1f}s"
            + (f"; [red]{len(failed)} failed[/]" if failed else "")
        )

    def _checks(self, o: PartitionOutcome) -> str:
        if not o.ok:
            return f"[red]{o.error}[/]"
        if o.checks_failed:
            return f"[red]failed: {', '.join(o.checks_failed)}[/]"
        return f"{o.checks_passed} passed"

    def _print_history(self, console: Console) -> None:
        table = Table(title="trades_history", title_justify="left")
        for column in ("partition", "rows", "first id", "last id", "vwap", "source", "checks", "s"):
            table.add_column(
                column, justify="left" if column in ("partition", "source") else "right"
            )
        for o in self.outcomes:
            m = o.metadata.get("trades_history", {})
            table.add_row(
                o.key,
                f"{m['rows']:,}" if "rows" in m else "-",
                str(m.get("first_trade_id", "-")),
                str(m.get("last_trade_id", "-")),
                f"{m['vwap']:.4f}" if m.get("vwap") is not None else "-",
                str(m.get("source", "-")),
                self._checks(o),
                f"{o.seconds:.2f}",
            )
        console.print(table)
        rows = sum(o.metadata.get("trades_history", {}).get("rows", 0) for o in self.outcomes)
        console.print(f"{rows:,} rows")

    def _print_build(self, console: Console) -> None:
        seen = {name for o in self.outcomes for name in o.metadata}
        assets = [a for a in BUILD_SHOWN if a in seen]
        table = Table(title="daily build: rows per table", title_justify="left")
        for column in ("partition", *assets, "checks", "s"):
            table.add_column(
                column, justify="left" if column == "partition" else "right", no_wrap=True
            )
        for o in self.outcomes:
            cells = [str(o.metadata.get(a, {}).get("rows", "-")) for a in assets]
            table.add_row(o.key, *cells, self._checks(o), f"{o.seconds:.2f}")
        console.print(table)


def validate_range(
    settings: Settings, start: dt.date, end: dt.date, *, allow_today: bool = False
) -> None:
    today = dt.datetime.now(dt.UTC).date()
    if end < start:
        raise UsageError(f"--end {end} is before --start {start}")
    if start < settings.start_date:
        raise UsageError(
            f"--start {start} is before the first partition day {settings.start_date} "
            "(set MARKETLAKE_START_DATE to go further back)"
        )
    if end > today or (end == today and not allow_today):
        raise UsageError(f"{end} is not a complete UTC day yet (today is {today})")


def backfill(
    settings: Settings,
    symbols: Sequence[str],
    start: dt.date,
    end: dt.date,
    *,
    source: str = "auto",
    console: Console | None = None,
) -> RunReport:
    """Materialize `trades_history` for symbols x [start, end], one run per partition."""
    validate_range(settings, start, end)
    add_symbols(settings, symbols)
    run_config = {**QUIET_RUN_CONFIG, "ops": {"trades_history": {"config": {"source": source}}}}
    return run_partitions(
        settings, "trades_history_job", symbols, start, end, run_config, "backfill", console
    )


def build(
    settings: Settings,
    symbols: Sequence[str],
    start: dt.date,
    end: dt.date,
    *,
    console: Console | None = None,
    allow_today: bool = False,
) -> RunReport:
    """Materialize the daily tables and every SQL model for symbols x [start, end].

    `allow_today` builds today's partial day too (the demo does, to show live rows);
    the schedules only ever build closed days.
    """
    validate_range(settings, start, end, allow_today=allow_today)
    add_symbols(settings, symbols)
    return run_partitions(
        settings, "daily_job", symbols, start, end, QUIET_RUN_CONFIG, "build", console
    )


def run_partitions(
    settings: Settings,
    job_name: str,
    symbols: Sequence[str],
    start: dt.date,
    end: dt.date,
    run_config: dict,
    title: str,
    console: Console | None,
) -> RunReport:
    """Execute `job_name` of the real Definitions in-process, one run per partition."""
    from orchestration.definitions import build_definitions

    job = build_definitions(settings).resolve_job_def(job_name)
    current = instance()
    keys = partition_keys(symbols, start, end)
    outcomes: list[PartitionOutcome] = []
    started = time.perf_counter()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[current]}"),
        console=console,
    ) as progress:
        task = progress.add_task(title, total=len(keys), current="")
        for key in keys:
            progress.update(task, current=key)
            outcomes.append(_execute(job, key, run_config, current))
            progress.advance(task)
    return RunReport(title, outcomes, time.perf_counter() - started)


def _execute(
    job: dg.JobDefinition, key: str, run_config: dict, current: dg.DagsterInstance
) -> PartitionOutcome:
    started = time.perf_counter()
    result = job.execute_in_process(
        partition_key=key,
        instance=current,
        raise_on_error=False,
        run_config=run_config,
        tags={"marketlake/launched_by": "cli"},
    )
    seconds = time.perf_counter() - started
    if not result.success:
        failures = result.get_step_failure_events()
        message = root_cause(failures[0].step_failure_data.error) if failures else "failed"
        return PartitionOutcome(key, ok=False, seconds=seconds, error=message)
    materializations = [
        event.step_materialization_data.materialization
        for event in result.get_asset_materialization_events()
    ]
    metadata = {
        m.asset_key.to_user_string(): {k: v.value for k, v in m.metadata.items()}
        for m in materializations
    }
    evaluations = result.get_asset_check_evaluations()
    return PartitionOutcome(
        key,
        ok=True,
        seconds=seconds,
        metadata=metadata,
        checks_passed=sum(e.passed for e in evaluations),
        checks_failed=[e.check_name for e in evaluations if not e.passed],
    )


def root_cause(error: Any) -> str:
    """The error the asset raised (under Dagster's wrappers), as `Type: message` on one line."""
    while error.cause is not None and (error.cls_name or "").startswith("Dagster"):
        error = error.cause
    return " ".join(error.message.split())


# --- long-running helpers -----------------------------------------------------------------------


#: The simulator's universe for the demo, `marketlake sim` and `marketlake ui`: busy enough
#: that live trades land every second (~3.5 per symbol), small enough for quick backfills.
DEMO_SIM_TRADES_PER_DAY = 300_000


def serve_simulator(
    port: int, *, trades_per_day: int | None = None, seed: int | None = None
) -> None:
    """The whole local exchange: archive + REST on `port`, websockets on `port + 1`."""
    from marketlake.simulator.data import SimConfig
    from marketlake.simulator.server import run
    from marketlake.simulator.websocket import WsSimulator

    config = SimConfig(
        trades_per_day=trades_per_day or DEMO_SIM_TRADES_PER_DAY,
        **({"seed": seed} if seed is not None else {}),
    )
    with WsSimulator(config, port=port + 1) as ws:
        print(f"  websocket: {ws.url}/stream (Binance), {ws.coinbase_url} (Coinbase)", flush=True)
        run(port=port, config=config)


def run_ui(*, ui_port: int, sim_port: int, lake: str | None) -> int:
    """`dagster dev` on 127.0.0.1 with workspace.yaml, beside the simulator when no URL is set.

    The webserver and daemon share `$DAGSTER_HOME` with the CLI, so CLI runs show up too.
    """
    from marketlake.simulator.data import SimConfig
    from marketlake.simulator.server import Simulator
    from marketlake.simulator.websocket import WsSimulator

    env = dict(os.environ)
    env["DAGSTER_HOME"] = str(dagster_home())
    if lake:
        env["MARKETLAKE_LAKE"] = lake
    root = Path(__file__).resolve().parent.parent
    use_sim = not env.get("MARKETLAKE_BINANCE_REST_URL")
    config = SimConfig(trades_per_day=DEMO_SIM_TRADES_PER_DAY)
    simulator = Simulator(config, port=sim_port) if use_sim else None
    ws = WsSimulator(config, port=sim_port + 1) if use_sim else None
    if simulator is not None and ws is not None:
        simulator.start()
        ws.start()
        for name in ("MARKETLAKE_BINANCE_ARCHIVE_URL", "MARKETLAKE_BINANCE_REST_URL"):
            env[name] = simulator.base_url
        env["MARKETLAKE_BINANCE_WS_URL"] = ws.url
        env["MARKETLAKE_COINBASE_WS_URL"] = ws.coinbase_url
        print(f"exchange simulator on {simulator.base_url} (websockets on {ws.url})")
    print(f"Dagster UI on http://127.0.0.1:{ui_port} (Ctrl-C stops it)")
    command = [
        sys.executable, "-m", "dagster", "dev",
        "-h", "127.0.0.1", "-p", str(ui_port), "-w", str(root / "workspace.yaml"),
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, cwd=root)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        return process.wait()
    finally:
        if simulator is not None and ws is not None:
            ws.stop()
            simulator.stop()
