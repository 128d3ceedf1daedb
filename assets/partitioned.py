"""What every instrument-day asset shares: keys, checks, and how each partition is reported.

A run may carry one partition (the CLI, a click in the UI) or a batch of them (a backfill
under `BackfillPolicy.multi_run`). Either way each partition is computed, checked, and
written only if its ERROR checks pass; and each is reported as itself, whoever launched
the run: its own materialization with its own metadata, its own result for every check
linked to that materialization, and no batch-level result that would shadow them.

How, in Dagster 1.13, where a run over a range of partitions has no single partition key:

- Metadata: `context.add_asset_metadata(metadata, partition_key=key)` for each partition,
  then one `MaterializeResult()`. Dagster emits one AssetMaterialization per partition of
  the run, each with that partition's metadata (and its `dagster/partition/*` tags).
- Checks: an `AssetCheckResult` carries no partition, and in a ranged run Dagster records it
  with none: a batch result that becomes the check's latest execution. So each partition's
  results are logged as `AssetCheckEvaluation(partition=key, target_materialization_data=...)`
  pointing at the materialization just stored for it; they fill the per-partition rows
  Dagster planned for the run's checks. The check outputs are then yielded empty
  (`Output(None)`), which records no evaluation.
- Failures: when a partition is refused by its ERROR checks (nothing written) or raises,
  yielding the asset's output would materialize every partition of the range; instead the
  written partitions are yielded as `AssetMaterialization(partition=key)`, every partition's
  checks are logged, and the step fails naming the partitions that failed and why. The UI
  then shows those partitions as failed and the others as materialized.
"""

import datetime as dt
import re
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import polars as pl
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,  # not re-exported by `dagster`
)

from assets.partition_key import PartitionKey
from marketlake.lake import Lake
from marketlake.quality import Check, CheckOutcome, blocking_failures, load_in_background

#: Partitions per run in a backfill (`BackfillPolicy.multi_run`) of every instrument-day
#: asset: a month of one instrument per process, so a year x 50 instruments is ~600 runs,
#: not 18,000.
PARTITIONS_PER_RUN = 30


#: Rows of a run's checked instrument-days held back to share one Delta commit. Each commit
#: costs a log read and a write of its own (10-130 ms, growing until the next checkpoint),
#: so a run of 30 small days commits a few times instead of 30; a day that alone reaches
#: this many rows commits alone, so a busy day never waits in memory beside others.
COMMIT_ROWS = 2_000_000


@dataclass
class PendingWrite:
    """Checked rows that will replace exactly one instrument-day of `table`."""

    table: str
    frame: pl.DataFrame
    partition: dict[str, Any]
    partition_by: Sequence[str]


@dataclass
class PartitionResult:
    """One partition's outcome: its metadata, its check outcomes, and whether it was written
    (False when an ERROR check failed: the previous rows stay).

    A result with a `pending` write is committed by `materialize_partitions` together with
    the run's other pending writes of the same table; `metadata["delta_version"]` is then
    that commit's version. Under `materialize_partitions(check_batch=...)`, `to_check` is
    what the checks read of the partition (its fetched rows, its merged day...): it is handed
    to `check_batch` with the rest of its batch, then dropped.
    """

    metadata: dict[str, Any] = field(default_factory=dict)
    outcomes: list[CheckOutcome] = field(default_factory=list)
    summary: str = ""
    written: bool = True
    pending: PendingWrite | None = None
    to_check: Any = None


#: Checks a batch of a run's partitions at once: `{key: to_check}` in, `{key: outcomes}` out.
CheckBatch = Callable[[dict[str, Any]], Mapping[str, Sequence[CheckOutcome]]]


class PartitionsFailed(Exception):
    """Instrument-days of a run that were not written; the message names each and why."""


def check_specs(
    asset: str, checks: Sequence[Check], partitions_def: dg.PartitionsDefinition
) -> list[dg.AssetCheckSpec]:
    """The Dagster specs of a table's checks: ERROR checks block downstream work."""
    # Partitioned checks are a Dagster preview; they are what makes a check's result belong
    # to its instrument-day in the UI, so the preview warning is acknowledged here, once.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [
            dg.AssetCheckSpec(
                check.name,
                asset=asset,
                description=check.description,
                blocking=check.blocking,
                partitions_def=partitions_def,
            )
            for check in checks
        ]


@dg.resource(
    description="Great Expectations' process, started as a run that checks rows begins, so its "
    "4-5 s import runs on another core while the run fetches its first instrument-day."
)
def great_expectations_process() -> None:
    """A resource of the assets whose rows GE checks (their `great_expectations` parameter).

    Dagster sets a run's resources up before its first step, and only those its assets
    require: a run that checks rows starts GE before it fetches its first instrument-day,
    and a stream or `venue_prices_1m` run never starts it."""
    load_in_background()


def materialize_partitions(
    context: dg.AssetExecutionContext,
    checks: Sequence[Check],
    work: Callable[[PartitionKey], PartitionResult],
    lake: Lake | None = None,
    check_batch: CheckBatch | None = None,
) -> Iterator[dg.MaterializeResult | dg.AssetMaterialization | dg.Output]:
    """Run `work` for every partition of the run and report each partition as itself.

    One instrument-day failing (refused by its checks, or raising) does not stop the
    others; the step fails at the end, naming every partition that failed. Pending writes
    (`PartitionResult.pending`) are committed to `lake` in batches (`COMMIT_ROWS`); a
    commit that fails fails the instrument-days it held, and wrote none of them. With
    `check_batch`, `work` only fetches, leaving what the checks read in each result's
    `to_check`: each batch is checked as a whole just before its commit (a GE validation
    costs ~0.2 s before it reads a row, so a batch shares them), and only the
    instrument-days whose ERROR checks passed are committed. A batch is checked and
    committed while the next one is fetched (`_Commits`).
    """
    keys = context.partition_keys
    results: dict[str, PartitionResult] = {}
    errors: dict[str, Exception] = {}
    commits = _Commits(lake, check_batch)
    progress = _ProgressLog(context)
    stopped: BaseException | None = None
    try:
        for key in keys:
            try:
                result = work(PartitionKey.parse(key))
            except Exception as error:
                if len(keys) == 1:
                    raise  # the partition's own error, unwrapped
                errors[key] = error
                context.log.error(f"{key}: {type(error).__name__}: {error}")
                continue
            results[key] = result
            errors.update(commits.add(key, result, results))
            progress.add(f"{key}: {result.summary}")
    except (KeyboardInterrupt, dg.DagsterExecutionInterruptedError) as interruption:
        # Ctrl-C or a terminated run: the days already checked are committed and reported
        # (one commit), the one in progress is dropped, the rest never start.
        stopped = interruption
    except BaseException:
        commits.abandon()
        raise
    try:
        errors.update(commits.flush(results))
    except (KeyboardInterrupt, dg.DagsterExecutionInterruptedError) as interruption:
        if stopped is not None:
            raise  # a second Ctrl-C: stop now
        # Ctrl-C while the days already fetched are checked and committed: they still are
        stopped = interruption
        errors.update(commits.flush(results))
    for key in [key for key, result in results.items() if result.pending is not None]:
        del results[key]  # stopped before its write was queued: dropped, as if in progress
    progress.flush()
    if len(keys) == 1 and errors:
        raise next(iter(errors.values()))

    written = [key for key, result in results.items() if result.written]
    failed = stopped or errors or len(written) < len(results)
    if failed:
        for key in written:
            yield dg.AssetMaterialization(
                asset_key=context.asset_key,
                partition=key,
                metadata=dagster_metadata(results[key].metadata),
                tags=_partition_tags(key),
            )
    else:
        for key in written:
            context.add_asset_metadata(dagster_metadata(results[key].metadata), partition_key=key)
        yield dg.MaterializeResult()

    targets = _stored_materializations(context, written)
    selected = {k.name for k in context.selected_asset_check_keys}
    for key, result in results.items():
        for outcome in _complete(result.outcomes, checks):
            if outcome.name in selected:
                context.log_event(_evaluation(context.asset_key, key, outcome, targets.get(key)))
    for output_name, spec in context.assets_def.check_specs_by_output_name.items():
        if spec.name in selected:
            yield dg.Output(None, output_name=output_name)

    if stopped is not None:
        raise stopped
    if failed:
        raise PartitionsFailed(_failure_message(context.asset_key, results, errors))


def write_now(result: PartitionResult, lake: Lake) -> PartitionResult:
    """Commit `result`'s pending write alone, unless an ERROR check refused it."""
    pending, result.pending = result.pending, None
    result.written = not blocking_failures(result.outcomes)
    if pending is not None and result.written:
        result.metadata["delta_version"] = lake.replace_partition(
            pending.table, pending.frame, pending.partition, pending.partition_by
        )
    return result


class _Commits:
    """The run's pending writes, checked and committed a batch per table at a time.

    A full batch is handed to two threads while the run goes on fetching the next
    instrument-days: one checks it (GE validates in its own process), the other commits it
    once checked (Delta writes in Rust), so a batch's commit overlaps the next one's checks
    and both overlap the fetch (a 1M-trade day: ~1 s of checks and ~0.4 s of commit beside
    ~0.7 s of fetch). Batches are checked, and committed, one at a time and in order.

    At most `IN_FLIGHT` batches of at most `IN_FLIGHT_ROWS` rows in all are handed on while
    the next batch is gathered: memory holds ~3 x `COMMIT_ROWS` rows at most, and a day
    too big for that (a busy day of millions of trades) is checked and committed before
    the next day is fetched, as a run did before batches overlapped.
    """

    IN_FLIGHT = 2
    IN_FLIGHT_ROWS = 2 * COMMIT_ROWS

    def __init__(self, lake: Lake | None, check: CheckBatch | None = None) -> None:
        self.lake = lake
        self.check = check
        self.queued: list[str] = []
        self.rows = 0
        #: (keys, rows, the commit's error or None) of each batch handed on, oldest first
        self.in_flight: list[tuple[list[str], int, Future[Exception | None]]] = []
        self.threads: tuple[ThreadPoolExecutor, ThreadPoolExecutor] | None = None

    def add(
        self, key: str, result: PartitionResult, results: dict[str, PartitionResult]
    ) -> dict[str, Exception]:
        """Queue `result`'s write, handing what is queued on first if it would not fit;
        the instrument-days of an earlier batch that failed to commit, if one did."""
        if result.pending is None or not result.written:
            return {}
        if self.lake is None:
            raise TypeError("a pending write needs materialize_partitions(lake=...)")
        failed = {}
        if self.queued and self.rows + result.pending.frame.height > COMMIT_ROWS:
            failed = self.hand_on(results)
        self.queued.append(key)
        self.rows += result.pending.frame.height
        if self.rows >= COMMIT_ROWS:
            failed |= self.hand_on(results)
        return failed

    def hand_on(self, results: dict[str, PartitionResult]) -> dict[str, Exception]:
        """Start checking and committing the queued writes (first waiting for the oldest
        batch in flight if `IN_FLIGHT` are); the instrument-days of a finished batch that
        failed to commit."""
        failed = self._finish(results, batches=self.IN_FLIGHT - 1)
        keys, rows, self.queued, self.rows = self.queued, self.rows, [], 0
        if keys:
            if self.threads is None:
                if self.check is not None:
                    load_in_background()  # GE's process belongs to this thread, not those
                self.threads = (
                    ThreadPoolExecutor(1, thread_name_prefix="marketlake-check"),
                    ThreadPoolExecutor(1, thread_name_prefix="marketlake-commit"),
                )
            checking, committing = self.threads
            checked = checking.submit(self._passing, {key: results[key] for key in keys})
            self.in_flight.append((keys, rows, committing.submit(self._commit, checked)))
            failed |= self._finish(results, rows=self.IN_FLIGHT_ROWS)
        return failed

    def flush(self, results: dict[str, PartitionResult]) -> dict[str, Exception]:
        """Check and commit everything queued, and wait for it; the instrument-days that
        failed to commit (they leave `results`)."""
        try:
            return self.hand_on(results) | self._finish(results, batches=0)
        finally:
            self._stop_threads()

    def abandon(self) -> None:
        """Write nothing more: wait for the batches in flight (a commit is not cut in the
        middle) and drop what is queued."""
        self.queued, self.rows = [], 0
        self._stop_threads()

    def _stop_threads(self) -> None:
        if self.threads is not None:
            for thread in self.threads:
                thread.shutdown()
            self.threads = None

    def _finish(
        self,
        results: dict[str, PartitionResult],
        batches: int | None = None,
        rows: int | None = None,
    ) -> dict[str, Exception]:
        """Wait for the oldest batches in flight until at most `batches` of at most `rows`
        rows in all are; a failed commit fails every day it held."""
        failed: dict[str, Exception] = {}
        while self.in_flight and (
            (batches is not None and len(self.in_flight) > batches)
            or (rows is not None and sum(n for _, n, _ in self.in_flight) > rows)
        ):
            keys, _rows, done = self.in_flight[0]
            error = done.result()  # an interrupted wait leaves it to the final flush
            self.in_flight.pop(0)
            if error is not None:
                failed |= {key: error for key in keys if results.pop(key, None) is not None}
        return failed

    def _commit(self, checked: Future[dict[str, PartitionResult]]) -> Exception | None:
        """Commit the days of a batch that passed their checks, as one write; the error
        that kept all of them from the lake, if one did. Runs on the commit thread: it
        touches only the results of its own batch."""
        batch = checked.result()  # a check that raised fails the run, as it would in line
        if not batch:
            return None
        writes = [result.pending for result in batch.values()]
        first = writes[0]
        started = time.perf_counter()
        try:
            version = self.lake.replace_partitions(  # type: ignore[union-attr]
                first.table,
                pl.concat([w.frame for w in writes], how="vertical_relaxed"),
                [w.partition for w in writes],
                first.partition_by,
            )
        except Exception as error:
            return error
        seconds = time.perf_counter() - started
        for result in batch.values():
            result.metadata["delta_version"] = version
            result.metadata["commit_partitions"] = len(batch)
            result.metadata["commit_s"] = round(seconds, 3)
            result.pending = None  # the rows are in the lake; free them
        return None

    def _passing(self, batch: dict[str, PartitionResult]) -> dict[str, PartitionResult]:
        """Check `batch` as one (when checks are batched); the results whose ERROR checks
        passed. Runs on the check thread."""
        if self.check is None:
            return batch
        outcomes = self.check({key: r.to_check for key, r in batch.items()})  # type: ignore[misc]
        for key, result in batch.items():
            result.to_check = None  # checked; the rows to write live on in `pending`
            result.outcomes = list(outcomes[key])
            result.written = not blocking_failures(result.outcomes)
            if not result.written:
                result.pending = None  # refused: its rows are never written
        return {key: result for key, result in batch.items() if result.written}


def _complete(outcomes: list[CheckOutcome], checks: Sequence[Check]) -> list[CheckOutcome]:
    """Every declared check gets a result; one that did not apply passes and says so."""
    by_name = {o.name: o for o in outcomes}
    return [
        by_name.get(check.name)
        or check.outcome(True, metadata={"note": "not applicable to this partition"})
        for check in checks
    ]


class _ProgressLog:
    """Each instrument-day's summary in the run's log, at most one line every few seconds.

    Every log line is an event Dagster stores (a write to its event log), so a run of many
    small days would spend more on its progress lines than on some of its days: lines are
    grouped, and the first day is logged at once, so a run shows its progress from the start.
    """

    EVERY_S = 2.0

    def __init__(self, context: dg.AssetExecutionContext) -> None:
        self.context = context
        self.lines: list[str] = []
        self.last: float | None = None

    def add(self, line: str) -> None:
        self.lines.append(line)
        if self.last is None or time.monotonic() - self.last >= self.EVERY_S:
            self.flush()

    def flush(self) -> None:
        if self.lines:
            self.context.log.info("\n".join(self.lines))
            self.lines, self.last = [], time.monotonic()


def _stored_materializations(
    context: dg.AssetExecutionContext, keys: Sequence[str]
) -> dict[str, AssetCheckEvaluationTargetMaterializationData]:
    """The materialization this run just stored for each of `keys` (the check's target),
    found the way Dagster finds a single-partition check's target: one query for the run,
    since the run's own materializations are the newest of its partitions."""
    if not keys:
        return {}
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=[str(k) for k in keys]),
        limit=len(keys),
    ).records
    return {
        record.partition_key: AssetCheckEvaluationTargetMaterializationData(
            storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
        )
        for record in records
        if record.run_id == context.run.run_id and record.partition_key is not None
    }


def _evaluation(
    asset_key: dg.AssetKey,
    partition: str,
    outcome: CheckOutcome,
    target: AssetCheckEvaluationTargetMaterializationData | None,
) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=asset_key,
        check_name=outcome.name,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity(outcome.severity),
        description=outcome.description,
        metadata=dagster_metadata({"failing_rows": outcome.failing_rows, **outcome.metadata}),
        partition=str(partition),  # a MultiPartitionKey does not bind as a SQL parameter
        target_materialization_data=target,
        blocking=outcome.severity == "ERROR",
    )


def _partition_tags(key: str) -> dict[str, str]:
    """The per-dimension tags Dagster puts on its own materializations of a multi-partition."""
    if isinstance(key, dg.MultiPartitionKey):
        return {f"dagster/partition/{dim}": value for dim, value in key.keys_by_dimension.items()}
    return {}


def _failure_message(
    asset_key: dg.AssetKey,
    results: Mapping[str, PartitionResult],
    errors: Mapping[str, Exception],
) -> str:
    lines = []
    for key, result in results.items():
        if not result.written:
            failed = ", ".join(
                o.name + (f" ({o.failing_rows:,} failing rows)" if o.failing_rows else "")
                for o in result.outcomes
                if not o.passed and o.severity == "ERROR"
            )
            lines.append(f"{key}: ERROR checks failed: {failed}")
    lines += [f"{key}: {type(error).__name__}: {error}" for key, error in errors.items()]
    total = len(results) + len(errors)
    return (
        f"{asset_key.to_user_string()}: {len(lines)} of {total} instrument-day(s) not written "
        f"(their previous rows stay): " + "; ".join(lines)
    )


#: Where one instrument-day's reason ends and the next one's key begins in that message.
_NEXT_KEY = re.compile(r"(?:^|; )(\d{4}-\d{2}-\d{2}\|[a-z]+:[^:;\s]+): ")


def failure_reasons(message: str) -> dict[str, str]:
    """`{key: reason}` from a `PartitionsFailed` message (empty for any other message), so
    the CLI can tell each instrument-day of a failed run what happened to it."""
    if "instrument-day(s) not written" not in message:
        return {}
    _, _, listed = message.partition("(their previous rows stay): ")
    found = list(_NEXT_KEY.finditer(listed))
    return {
        match[1]: listed[match.end() : found[i + 1].start() if i + 1 < len(found) else None].strip()
        for i, match in enumerate(found)
    }


def dagster_metadata(values: Mapping[str, Any]) -> dict[str, Any]:
    """Dagster metadata takes plain scalars; nested values are shown as JSON, dates as text,
    and values already typed for Dagster (a chart's Markdown) as they are."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, dg.MetadataValue):  # a record, hence a tuple: test it first
            out[key] = value
        elif isinstance(value, dict | list | tuple):
            out[key] = dg.MetadataValue.json(_jsonable(value))
        elif isinstance(value, dt.date | dt.datetime):
            out[key] = value.isoformat()
        else:
            out[key] = value
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value
