"""Running the real jobs in-process, one run per partition, for the CLI and the demo.

The runs go to the same Dagster instance the UI reads (`orchestration.instance`), tagged
`marketlake/launched_by: cli`.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import Any

import dagster as dg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from orchestration.instance import local_instance
from orchestration.orphans import fail_orphaned_runs, process_tags
from orchestration.partitions import partition_keys
from orchestration.report import PartitionOutcome, RunReport
from orchestration.resources import binance_endpoints, lake_of
from orchestration.settings import Settings
from orchestration.symbols import register_symbols
from orchestration.validation import check_lake, check_size, validate_range

#: In-process runs log warnings and errors only; progress is the progress bar's job.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def backfill(
    settings: Settings,
    symbols: Sequence[str],
    start: dt.date,
    end: dt.date,
    *,
    source: str = "auto",
    console: Console | None = None,
    confirmed: bool = False,
) -> RunReport:
    """Materialize `trades_history` for symbols x [start, end], one run per partition."""
    instance = preflight(settings, symbols, start, end, confirmed=confirmed, console=console)
    run_config = {**QUIET_RUN_CONFIG, "ops": {"trades_history": {"config": {"source": source}}}}
    return run_partitions(
        settings, instance, "trades_history_job", symbols, start, end, run_config, "backfill",
        console,
    )  # fmt: skip


def build(
    settings: Settings,
    symbols: Sequence[str],
    start: dt.date,
    end: dt.date,
    *,
    console: Console | None = None,
    allow_today: bool = False,
    confirmed: bool = False,
) -> RunReport:
    """Materialize the daily tables and every SQL model for symbols x [start, end].

    `allow_today` builds today's partial day too (the demo does, to show live rows);
    the schedules only ever build closed days.
    """
    instance = preflight(
        settings, symbols, start, end, confirmed=confirmed, console=console,
        allow_today=allow_today,
    )  # fmt: skip
    return run_partitions(
        settings, instance, "daily_job", symbols, start, end, QUIET_RUN_CONFIG, "build", console
    )


def preflight(
    settings: Settings,
    symbols: Sequence[str],
    start: dt.date,
    end: dt.date,
    *,
    confirmed: bool,
    console: Console | None,
    allow_today: bool = False,
) -> dg.DagsterInstance:
    """Everything that can refuse the request, before any download or write: the range and
    its size, the lake, the symbols against the exchange. Returns the instance to run in."""
    validate_range(settings, start, end, allow_today=allow_today)
    days = (end - start).days + 1
    check_size(len(symbols) * days, confirmed=confirmed)
    check_lake(lake_of(settings))
    if console is not None:
        console.print(
            f"{len(symbols)} symbol{'s' if len(symbols) > 1 else ''} x {days} "
            f"day{'s' if days > 1 else ''} = {len(symbols) * days:,} partitions, "
            "one run each",
            highlight=False,
        )
    instance = cli_instance(console)
    register_symbols(instance, binance_endpoints(settings), symbols)
    return instance


def cli_instance(console: Console | None) -> dg.DagsterInstance:
    """The local instance, after failing the runs a killed CLI process left STARTED."""
    instance = local_instance()
    orphaned = fail_orphaned_runs(instance)
    if orphaned and console is not None:
        console.print(
            f"[yellow]marked {len(orphaned)} run(s) failed whose process is gone:[/] "
            + ", ".join(
                f"{run.run_id[:8]} ({run.tags.get('dagster/partition', run.job_name)})"
                for run in orphaned
            ),
            highlight=False,
        )
    return instance


def run_partitions(
    settings: Settings,
    instance: dg.DagsterInstance,
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
    keys = partition_keys(symbols, start, end)
    outcomes: list[PartitionOutcome] = []
    interrupted = False
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
        try:
            for key in keys:
                progress.update(task, current=key)
                outcome = _execute(job, key, run_config, instance)
                outcomes.append(outcome)
                progress.advance(task)
                if outcome.interrupted:
                    # Dagster turned Ctrl-C into a failed run; the user asked to stop, not
                    # to go on with the next partition.
                    interrupted = True
                    break
        except KeyboardInterrupt:  # between two runs, outside Dagster's handler
            interrupted = True
    return RunReport(
        title,
        outcomes,
        time.perf_counter() - started,
        not_started=keys[len(outcomes) :],
        interrupted=interrupted,
    )


def _execute(
    job: dg.JobDefinition, key: str, run_config: dict, instance: dg.DagsterInstance
) -> PartitionOutcome:
    started = time.perf_counter()
    result = job.execute_in_process(
        partition_key=key,
        instance=instance,
        raise_on_error=False,
        run_config=run_config,
        tags={"marketlake/launched_by": "cli", **process_tags()},
    )
    seconds = time.perf_counter() - started
    if not result.success:
        failures = result.get_step_failure_events()
        error = failures[0].step_failure_data.error if failures else None
        if error is not None and was_interrupted(error):
            return PartitionOutcome(
                key, ok=False, seconds=seconds, error="interrupted", interrupted=True
            )
        message = root_cause(error) if error is not None else "failed"
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


#: What Dagster raises in a step when the process gets SIGINT (Ctrl-C) during a run.
INTERRUPTIONS = ("DagsterExecutionInterruptedError", "KeyboardInterrupt")


def was_interrupted(error: Any) -> bool:
    """Whether a step failed because the user pressed Ctrl-C, at any depth of the error."""
    while error is not None:
        if error.cls_name in INTERRUPTIONS:
            return True
        error = error.cause or error.context
    return False


def root_cause(error: Any) -> str:
    """The error the asset raised (under Dagster's wrappers), as `Type: message` on one line."""
    while error.cause is not None and (error.cls_name or "").startswith("Dagster"):
        error = error.cause
    return " ".join(error.message.split())
