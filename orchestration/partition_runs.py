"""Running the real jobs for the CLI and the demo: in runs of a month of one instrument, in
this process or in `--jobs` worker processes.

The runs go to the same Dagster instance the UI reads (`orchestration.instance`), tagged
`marketlake/launched_by: cli`.

Importing this module does not import Dagster: a command checks its request first, and a
backfill starts downloading its first day (`assets.archive_prefetch`) and a build starts
merging its first day (`assets.merged_days`) while Dagster loads, the second or two that
import takes. The functions that need Dagster import it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import multiprocessing
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from assets.archive_prefetch import archive_day_prefetched
from assets.merged_days import first_day_merged
from assets.partition_key import PartitionKey
from marketlake.instruments import Instrument
from orchestration.instance import local_instance
from orchestration.report import PartitionOutcome, RunReport
from orchestration.settings import Settings
from orchestration.symbols import add_partitions, check_listed
from orchestration.validation import check_history, check_lake, check_size, validate_range

if TYPE_CHECKING:
    import dagster as dg

    from orchestration.run_batches import RunBatch

#: In-process runs log warnings and errors only; progress is the progress bar's job.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def backfill(
    settings: Settings,
    instruments: Sequence[Instrument],
    start: dt.date,
    end: dt.date,
    *,
    source: str = "auto",
    console: Console | None = None,
    confirmed: bool = False,
    jobs: int = 1,
) -> RunReport:
    """Materialize `trades_history` for instruments x [start, end]."""
    check_history(instruments, source)
    preflight(settings, instruments, start, end, confirmed=confirmed)
    with _first_day_prefetched(settings, instruments[0], start, source, jobs):
        instance = open_instance(settings, instruments, start, end, console=console, jobs=jobs)
        run_config = {**QUIET_RUN_CONFIG, "ops": {"trades_history": {"config": {"source": source}}}}
        return run_partitions(
            settings, instance, "trades_history_job", instruments, start, end, run_config,
            "backfill", console, jobs,
        )  # fmt: skip


def _first_day_prefetched(
    settings: Settings, first: Instrument, date: dt.date, source: str, jobs: int
) -> contextlib.AbstractContextManager[object]:
    """The first run's first day, downloading from the archive while Dagster loads: with
    `--jobs 1` (a worker process could not take it) and when it comes from the archive."""
    if jobs == 1 and first.venue == "binance" and source in ("archive", "auto"):
        return archive_day_prefetched(settings.binance_archive_url, first.symbol, date)
    return contextlib.nullcontext()


def build(
    settings: Settings,
    instruments: Sequence[Instrument],
    start: dt.date,
    end: dt.date,
    *,
    console: Console | None = None,
    allow_today: bool = False,
    confirmed: bool = False,
    jobs: int = 1,
) -> RunReport:
    """Materialize the daily tables and every SQL model for instruments x [start, end].

    `allow_today` builds today's partial day too (the demo does, to show live rows);
    the schedules only ever build closed days.
    """
    preflight(settings, instruments, start, end, confirmed=confirmed, allow_today=allow_today)
    with _first_day_merged(settings, instruments[0], start, jobs):
        instance = open_instance(settings, instruments, start, end, console=console, jobs=jobs)
        return run_partitions(
            settings, instance, "daily_job", instruments, start, end, QUIET_RUN_CONFIG, "build",
            console, jobs,
        )  # fmt: skip


def _first_day_merged(
    settings: Settings, first: Instrument, date: dt.date, jobs: int
) -> contextlib.AbstractContextManager[object]:
    """The first run's first day of `trades`, merging while Dagster loads (`--jobs 1`: a
    worker process could not take it)."""
    if jobs != 1:
        return contextlib.nullcontext()
    key = PartitionKey(date, first)
    return first_day_merged(
        key, settings.open_lake(), settings.binance_endpoints(), settings.rest_histories()
    )


def build_venue_prices(
    settings: Settings, dates: Sequence[dt.date], *, console: Console | None = None
) -> bool:
    """Materialize `venue_prices_1m` for `dates` (a run per day, every venue the lake holds
    that day), in the instance the UI reads; True when every day was written."""
    from orchestration.definitions import build_definitions
    from orchestration.run_batches import execute_run

    job = build_definitions(settings).resolve_job_def("venue_prices_job")
    instance = cli_instance(console)
    ok = True
    for date in dates:
        result = execute_run(job, instance, QUIET_RUN_CONFIG, date.isoformat())
        ok = ok and result.success
        if console is not None:
            console.print(f"venue_prices_1m {date}: {'written' if result.success else 'FAILED'}")
    return ok


def preflight(
    settings: Settings,
    instruments: Sequence[Instrument],
    start: dt.date,
    end: dt.date,
    *,
    confirmed: bool,
    allow_today: bool = False,
) -> None:
    """Everything about the request that can refuse it, before any download or write, and
    before Dagster loads: the range and its size, the lake, the instruments against their
    venue."""
    validate_range(settings, start, end, allow_today=allow_today)
    check_size(len(instruments) * ((end - start).days + 1), confirmed=confirmed)
    check_lake(settings.open_lake())
    check_listed(instruments, settings.binance_rest_url, weight_limit=settings.rest_weight_limit)


def open_instance(
    settings: Settings,
    instruments: Sequence[Instrument],
    start: dt.date,
    end: dt.date,
    *,
    console: Console | None,
    jobs: int = 1,
) -> dg.DagsterInstance:
    """The instance to run in, with the instruments among its partitions; an instance
    still to migrate is refused (`orchestration.partitions.check_migrated`)."""
    from orchestration.run_batches import plan_batches

    if console is not None:
        days = (end - start).days + 1
        runs = len(plan_batches(instruments, start, end))
        partitions = len(instruments) * days
        console.print(
            f"{len(instruments)} instrument{'s' if len(instruments) > 1 else ''} x {days} "
            f"day{'s' if days > 1 else ''} = "
            f"{partitions:,} partition{'s' if partitions > 1 else ''} "
            f"in {runs:,} run{'s' if runs > 1 else ''}"
            + (f", {jobs} at a time" if jobs > 1 and runs > 1 else ""),
            highlight=False,
        )
    instance = cli_instance(console)
    add_partitions(instance, instruments)
    return instance


def cli_instance(console: Console | None) -> dg.DagsterInstance:
    """The local instance, after failing the runs a killed CLI process left STARTED."""
    from orchestration.orphans import fail_orphaned_runs

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
    instruments: Sequence[Instrument],
    start: dt.date,
    end: dt.date,
    run_config: dict,
    title: str,
    console: Console | None,
    jobs: int = 1,
) -> RunReport:
    """Execute `job_name` of the real Definitions over instruments x [start, end], in runs
    of up to `PARTITIONS_PER_RUN` days of one instrument, `jobs` runs at a time.

    An instrument-day left unbuilt because its run failed for another one gets a run of
    its own afterwards, so one bad day fails only itself.
    """
    from orchestration.run_batches import plan_batches, singles

    batches = planned = plan_batches(instruments, start, end)
    keys = [key for batch in batches for key in batch.keys]
    outcomes: dict[str, PartitionOutcome] = {}
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
        runner = (
            _PoolRunner(settings, job_name, jobs)
            if jobs > 1
            else _InProcess(settings, job_name, instance)
        )
        with runner:
            try:
                for _ in range(2):  # the planned runs, then the collateral ones alone
                    for batch_outcomes in runner.run(batches, run_config, progress, task):
                        for outcome in batch_outcomes:
                            outcomes[outcome.key] = outcome
                            if not outcome.collateral:
                                progress.advance(task)
                        if any(o.interrupted for o in batch_outcomes):
                            # Dagster turned Ctrl-C into a failed run; the user asked to
                            # stop, not to go on with the next run.
                            raise KeyboardInterrupt
                    batches = singles([o.key for o in outcomes.values() if o.collateral])
                    if not batches:
                        break
            except KeyboardInterrupt:  # between two runs, outside Dagster's handler
                interrupted = True
    ran = [outcomes[key] for key in keys if key in outcomes]
    return RunReport(
        title,
        ran,
        time.perf_counter() - started,
        not_started=[key for key in keys if key not in outcomes],
        interrupted=interrupted,
        runs=len(planned),
        jobs=jobs,
    )


class _InProcess:
    """Runs one after the other in this process (the default: `--jobs 1`)."""

    def __init__(self, settings: Settings, job_name: str, instance: dg.DagsterInstance) -> None:
        from orchestration.definitions import build_definitions

        self.job = build_definitions(settings).resolve_job_def(job_name)
        self.instance = instance

    def __enter__(self) -> _InProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def run(self, batches, run_config, progress, task) -> Iterator[list[PartitionOutcome]]:
        from orchestration.run_batches import execute_batch

        for batch in batches:
            progress.update(task, current=batch.label)
            yield execute_batch(self.job, batch, run_config, self.instance)


class _PoolRunner:
    """Runs in `jobs` worker processes, each with its own Dagster job and instance handle.

    Partitions of a table are disjoint Delta partitions, so concurrent runs commit
    without conflicting (a lost commit race is retried by deltalake); the SQLite instance
    takes their events one writer at a time.
    """

    def __init__(self, settings: Settings, job_name: str, jobs: int) -> None:
        self.jobs = jobs
        self.pool = ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(settings, job_name),
        )

    def __enter__(self) -> _PoolRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        # On Ctrl-C the workers got SIGINT too (one process group): their runs end as
        # interrupted; queued runs are dropped.
        self.pool.shutdown(wait=True, cancel_futures=True)

    def run(self, batches, run_config, progress, task) -> Iterator[list[PartitionOutcome]]:
        pending = [self.pool.submit(_run_in_worker, batch, run_config) for batch in batches]
        progress.update(task, current=f"{len(pending)} runs, {self.jobs} at a time")
        reported = set()
        try:
            for future in as_completed(pending):
                reported.add(future)
                yield future.result()
        except KeyboardInterrupt:
            # Ctrl-C reached the workers too (one process group): their runs end as
            # interrupted after committing what they had checked; queued runs never start.
            for future in pending:
                future.cancel()
            for future in pending:
                if future not in reported and not future.cancelled():
                    with contextlib.suppress(Exception):  # a worker that died mid-run
                        yield future.result()
            raise


_worker: tuple[dg.JobDefinition, dg.DagsterInstance] | None = None


def _start_worker(settings: Settings, job_name: str) -> None:
    from marketlake.quality import load_in_background
    from orchestration.definitions import build_definitions

    load_in_background()  # before the definitions' imports, on the other core

    global _worker
    _worker = (build_definitions(settings).resolve_job_def(job_name), local_instance())


def _run_in_worker(batch: RunBatch, run_config: dict) -> list[PartitionOutcome]:
    from orchestration.run_batches import execute_batch

    assert _worker is not None, "worker not started"
    job, instance = _worker
    return execute_batch(job, batch, run_config, instance)
