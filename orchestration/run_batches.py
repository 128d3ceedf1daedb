"""The CLI's instrument-days grouped into runs, and each run's outcome told per instrument-day.

A run of one partition costs Dagster ~20 event-log writes before any data moves (run and
step start and end, resource set-up, ...); a run of 30 consecutive days of one instrument pays
them once. So the CLI groups partitions the way a UI backfill does
(`BackfillPolicy.multi_run(PARTITIONS_PER_RUN)`): one run per instrument per 30 days, over a
partition range (`dagster/asset_partition_range_start|end` tags), which the assets handle
partition by partition (`assets.partitioned.materialize_partitions`).
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from assets.partition_key import PartitionKey
from assets.partitioned import PARTITIONS_PER_RUN, failure_reasons
from marketlake.instruments import Instrument
from orchestration.orphans import process_tags
from orchestration.partitions import partition_key
from orchestration.report import PartitionOutcome

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

#: What Dagster raises in a step when the process gets SIGINT (Ctrl-C) during a run.
INTERRUPTIONS = ("DagsterExecutionInterruptedError", "KeyboardInterrupt")


@dataclass(frozen=True)
class RunBatch:
    """Consecutive days of one instrument, executed as one run."""

    instrument: Instrument
    first: dt.date
    last: dt.date

    @property
    def keys(self) -> list[str]:
        days = (self.last - self.first).days + 1
        return [
            str(partition_key(self.first + dt.timedelta(days=i), self.instrument))
            for i in range(days)
        ]

    @property
    def label(self) -> str:
        if self.first == self.last:
            return f"{self.first}|{self.instrument}"
        return f"{self.instrument} {self.first}..{self.last}"

    def run_arguments(self) -> dict[str, Any]:
        """How `execute_in_process` is told the partitions: a key, or a range of keys."""
        keys = self.keys
        if len(keys) == 1:
            return {"partition_key": keys[0], "tags": {}}
        return {"partition_key": None, "tags": {RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]}}


def plan_batches(
    instruments: Sequence[Instrument],
    start: dt.date,
    end: dt.date,
    per_run: int = PARTITIONS_PER_RUN,
) -> list[RunBatch]:
    """instruments x [start, end] as runs of at most `per_run` consecutive days of one
    instrument."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    if per_run < 1:
        raise ValueError(f"partitions per run must be at least 1, got {per_run}")
    batches = []
    for instrument in instruments:
        first = start
        while first <= end:
            last = min(end, first + dt.timedelta(days=per_run - 1))
            batches.append(RunBatch(instrument, first, last))
            first = last + dt.timedelta(days=1)
    return batches


def singles(keys: Sequence[str]) -> list[RunBatch]:
    """One run per key (a retry of instrument-days whose run failed for another one)."""
    batches = []
    for key in keys:
        parsed = PartitionKey.parse(key)
        batches.append(RunBatch(parsed.instrument, parsed.date, parsed.date))
    return batches


def execute_batch(
    job: dg.JobDefinition,
    batch: RunBatch,
    run_config: dict,
    instance: dg.DagsterInstance,
) -> list[PartitionOutcome]:
    """Run `batch` in this process against `instance`; an outcome per instrument-day."""
    arguments = batch.run_arguments()
    started = time.perf_counter()
    result = execute_run(job, instance, run_config, arguments["partition_key"], arguments["tags"])
    seconds = time.perf_counter() - started
    return outcomes_of(result, batch.keys, seconds, set(job.asset_layer.selected_asset_keys))


def execute_run(
    job: dg.JobDefinition,
    instance: dg.DagsterInstance,
    run_config: dict,
    partition_key: str | None,
    tags: dict[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    """One CLI run of `job` in this process: failures are returned, not raised, and the run
    is tagged as the CLI's and with this process, so a later CLI start can tell whether it
    is still running (`orchestration.orphans`)."""
    return job.execute_in_process(
        partition_key=partition_key,
        instance=instance,
        raise_on_error=False,
        run_config=run_config,
        tags={**(tags or {}), "marketlake/launched_by": "cli", **process_tags()},
    )


def outcomes_of(
    result: dg.ExecuteInProcessResult,
    keys: Sequence[str],
    seconds: float,
    assets: set[dg.AssetKey],
) -> list[PartitionOutcome]:
    """What happened to each of `keys` in one run.

    An instrument-day is done when every asset of the job materialized it. One that is
    not was either named by its asset's failure (refused by its checks, or raised), or
    was stopped by Ctrl-C, or was left unbuilt because an upstream step failed for
    *another* instrument-day of the run: that one is `collateral`, and worth a run of its own.
    """
    metadata: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        metadata[str(materialization.partition)][materialization.asset_key.to_user_string()] = {
            k: v.value for k, v in materialization.metadata.items()
        }
    evaluations: dict[str, list[dg.AssetCheckEvaluation]] = defaultdict(list)
    for evaluation in result.get_asset_check_evaluations():
        evaluations[str(evaluation.partition)].append(evaluation)

    reasons: dict[str, str] = {}
    interrupted = False
    whole_run_error: str | None = None
    for failure in result.get_step_failure_events():
        error = failure.step_failure_data.error
        if error is None:
            continue
        if was_interrupted(error):
            interrupted = True
            continue
        cause = root_cause(error)
        named = failure_reasons(cause)
        reasons.update(named)
        if not named:
            whole_run_error = whole_run_error or cause
    if not result.success and not reasons and whole_run_error is None and not interrupted:
        whole_run_error = "failed"

    names = {asset.to_user_string() for asset in assets}
    share = seconds / len(keys)
    outcomes = []
    for key in keys:
        done = names <= set(metadata.get(key, {}))
        checks = evaluations.get(key, [])
        outcome = PartitionOutcome(
            key,
            ok=done,
            seconds=_partition_seconds(metadata.get(key, {})) or share,
            metadata=metadata.get(key, {}),
            checks_passed=sum(e.passed for e in checks),
            checks_failed=[e.check_name for e in checks if not e.passed],
        )
        if not done:
            if key in reasons:
                outcome.error = reasons[key]
            elif interrupted:
                outcome.error, outcome.interrupted = "interrupted", True
            elif whole_run_error is not None:
                outcome.error = whole_run_error
            else:
                outcome.error = "not built: its run failed for another instrument-day"
                outcome.collateral = True
        outcomes.append(outcome)
    return outcomes


def _partition_seconds(metadata: dict[str, dict[str, Any]]) -> float | None:
    """The instrument-day's own work: the sum of its assets' `duration_s`."""
    durations = [m["duration_s"] for m in metadata.values() if "duration_s" in m]
    return sum(durations) if durations else None


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
