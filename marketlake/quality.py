"""Great Expectations behind one small function: a frame and expectations in, outcomes out.

GE validates pandas frames, takes seconds to import (4-5 s) and draws progress bars by
default, so it runs in a process of its own (`quality_process`), started on first use or,
by a caller that knows checks will follow (the CLI's backfill and build, a run of the checked
assets as it sets up its resources), ahead of time with `load_in_background`: its import then
runs on another core instead of in front of the first partition's checks. Only the columns
an expectation reads cross to it; it runs an ephemeral context with progress bars and
analytics off: no files, no network, no telemetry.

Every expectation of a call is validated in one suite against one batch: GE then loads the
batch once and computes the metrics expectations share (row count, null masks) once.
GE's batch fingerprint is switched off (`_FINGERPRINT_MAX_BYTES`): it hashes every cell of
an in-memory frame for a batch marker nothing here reads, ~0.4 s per batch at 5M rows.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl

from marketlake.quality_process import ExpectationResult, ValidationProcess

Severity = Literal["ERROR", "WARN"]

#: How many failing values a check reports (enough to diagnose, small enough for the UI).
SAMPLE_SIZE = 10

#: Largest in-memory frame GE fingerprints (its `HASH_THRESHOLD`, 1e9 bytes by default); the
#: fingerprint only labels the batch in result metadata, which run_checks never reads.
_FINGERPRINT_MAX_BYTES = 0


@dataclass(frozen=True)
class Expectation:
    """One Great Expectations expectation, named by its GE class, with its keyword arguments."""

    kind: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def column(self) -> str | None:
        return self.kwargs.get("column")


@dataclass(frozen=True)
class CheckOutcome:
    """The result of one named check (one or more expectations, all must pass)."""

    name: str
    passed: bool
    severity: Severity
    description: str
    failing_rows: int = 0
    metadata: Mapping[str, Any] = field(default_factory=dict)


#: A check's expectations for one partition, from what the partition knows (its day, the
#: archive's line count...): the expectations of a day check depend on the day.
ExpectationsFor = Callable[[Any], Sequence[Expectation]]


@dataclass(frozen=True)
class Check:
    """A named data-quality check, declared once: what it asserts, how much a failure
    matters, and the expectations GE runs for it.

    `expectations` is a list, or a function of the partition's parameters giving the list.
    A check whose list is empty for a partition does not apply to it (run_checks gives it no
    outcome); a check the table computes outside GE (say, conflicts counted by a merge) has
    no expectations and reports through `outcome`.
    """

    name: str
    description: str
    severity: Severity = "ERROR"
    expectations: Sequence[Expectation] | ExpectationsFor = ()

    @property
    def blocking(self) -> bool:
        """ERROR checks gate the write and stop downstream work; WARN checks report."""
        return self.severity == "ERROR"

    def expectations_for(self, params: Any = None) -> Sequence[Expectation]:
        found = self.expectations
        return found(params) if callable(found) else found

    def outcome(
        self, passed: bool, failing_rows: int = 0, metadata: Mapping[str, Any] | None = None
    ) -> CheckOutcome:
        """This check's outcome, computed by the caller rather than by GE."""
        return CheckOutcome(
            self.name, passed, self.severity, self.description, failing_rows, metadata or {}
        )


def blocking_failures(outcomes: Sequence[CheckOutcome]) -> list[CheckOutcome]:
    """The failed ERROR checks: any one of them means the rows must not be written."""
    return [o for o in outcomes if not o.passed and o.severity == "ERROR"]


_process_lock = threading.Lock()
_process: ValidationProcess | None = None
_build_lock = threading.Lock()  # one build of the context at a time (in the GE process)
_loaded: tuple[Any, Any] | None = None


def load_in_background() -> None:
    """Start the Great Expectations process now (once per process), so that its import runs
    on another core while this process imports Dagster and fetches the first partition;
    the first validation waits for it only if it is not ready yet."""
    _validator()


def wait_until_loaded() -> None:
    """Start the GE process if needed and return once it has imported GE (benchmarks time
    the work without that fixed cost)."""
    _validator().validate(pl.DataFrame(), [])


def fork_validator() -> None:
    """This process's GE process, forked from it now: for a process that has GE loaded and
    runs no thread but its main one (a warm run worker, `orchestration.warm_workers`)."""
    global _process
    with _process_lock:
        if _process is None:
            _process = ValidationProcess(fork=True)
            atexit.register(_process.stop)


def _validator() -> ValidationProcess:
    global _process
    with _process_lock:
        if _process is None:
            _process = ValidationProcess()
            atexit.register(_process.stop)
        return _process


def load_great_expectations() -> tuple[Any, Any]:
    """GE and the batch definition every validation uses, built once per process (the
    first caller builds it; a concurrent caller waits for that one instead of racing it).
    Only the GE process (`quality_process`) calls this."""
    global _loaded
    with _build_lock:
        if _loaded is None:
            _loaded = _build_context()
        return _loaded


def _build_context() -> tuple[Any, Any]:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.execution_engine import pandas_execution_engine

    if hasattr(pandas_execution_engine, "HASH_THRESHOLD"):
        pandas_execution_engine.HASH_THRESHOLD = _FINGERPRINT_MAX_BYTES

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_definition = (
        context.data_sources.add_pandas("marketlake")
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("whole")
    )
    return gx, batch_definition


def run_checks(
    frame: pl.DataFrame, checks: Sequence[Check], params: Any = None
) -> list[CheckOutcome]:
    """Validate `frame` against every check that has expectations for `params`; never
    raises for failing data. Checks without expectations get no outcome here.

    Each check's metadata says how many rows failed and shows a sample of the failing
    values, so a failed check in the Dagster UI explains itself.
    """
    planned = _plan(checks, params)
    if not planned:
        return []
    results = _validate_frame(frame, planned)

    outcomes = []
    for check, expectations in planned:
        passed = True
        failing = 0
        details: dict[str, Any] = {}
        for expectation in expectations:
            result = results[_key(expectation)]
            passed = passed and bool(result.success)
            unexpected = int(result.result.get("unexpected_count") or 0)
            failing += unexpected
            label = (
                expectation.kind
                if expectation.column is None
                else (f"{expectation.kind}({expectation.column})")
            )
            if not result.success:
                details[label] = {
                    "failing_rows": unexpected,
                    "sample": result.result.get("partial_unexpected_list") or [],
                    "observed": result.result.get("observed_value"),
                }
        outcomes.append(
            CheckOutcome(
                name=check.name,
                passed=passed,
                severity=check.severity,
                description=check.description,
                failing_rows=failing,
                metadata={"rows_checked": frame.height, "failures": details}
                if details
                else {"rows_checked": frame.height},
            )
        )
    return outcomes


#: Expectations whose success over a concatenation of frames means success on each frame:
#: row-wise tests, uniqueness, and bounds on a column's min or max. (A row count has no
#: such property except its lower bound over non-empty frames, which is all that is used.)
_HOLD_PER_PART = {
    "ExpectColumnValuesToBeBetween",
    "ExpectColumnValuesToNotBeNull",
    "ExpectColumnValuesToBeUnique",
    "ExpectColumnMaxToBeBetween",
    "ExpectColumnMinToBeBetween",
}


def run_checks_batch(
    frames: Mapping[str, pl.DataFrame],
    checks: Sequence[Check],
    params: Mapping[str, Any],
) -> dict[str, list[CheckOutcome]]:
    """`run_checks` for many partitions, `{key: outcomes}`, in as few validations as it takes.

    A validation costs GE ~0.2 s before it reads a row, as much as the checks of a
    100k-trade day themselves, so partitions whose checks plan the same expectations are
    validated as one frame. Every expectation so planned holds over the whole only if it
    holds for each part (`_HOLD_PER_PART`), so when all pass, every partition passes with
    exactly the outcome it would get alone; when one fails, each partition is validated
    alone, and so gets its own failing rows and samples. An empty frame, or expectations
    that do not split that way, are validated alone from the start.
    """
    outcomes: dict[str, list[CheckOutcome]] = {}
    together: dict[tuple, list[str]] = {}
    for key, frame in frames.items():
        planned = _plan(checks, params[key])
        if frame.height and planned and all(_splits(e) for _, es in planned for e in es):
            signature = tuple((c.name, tuple(_key(e) for e in es)) for c, es in planned)
            together.setdefault(signature, []).append(key)
        else:
            outcomes[key] = run_checks(frame, checks, params[key])
    for keys in together.values():
        planned = _plan(checks, params[keys[0]])
        if len(keys) > 1 and _all_pass(
            pl.concat([frames[k].select(_columns(planned)) for k in keys], how="vertical_relaxed"),
            planned,
        ):
            for key in keys:
                outcomes[key] = [
                    CheckOutcome(
                        check.name,
                        True,
                        check.severity,
                        check.description,
                        metadata={"rows_checked": frames[key].height},
                    )
                    for check, _ in planned
                ]
        else:
            for key in keys:
                outcomes[key] = run_checks(frames[key], checks, params[key])
    return {key: outcomes[key] for key in frames}


def _all_pass(frame: pl.DataFrame, planned: Sequence[tuple[Check, Sequence[Expectation]]]) -> bool:
    return all(result.success for result in _validate_frame(frame, planned).values())


def _splits(expectation: Expectation) -> bool:
    if expectation.kind == "ExpectTableRowCountToBeBetween":
        return set(expectation.kwargs) == {"min_value"}  # over non-empty frames only
    return expectation.kind in _HOLD_PER_PART


def _plan(checks: Sequence[Check], params: Any) -> list[tuple[Check, list[Expectation]]]:
    return [(c, e) for c in checks if (e := list(c.expectations_for(params)))]


def _columns(planned: Sequence[tuple[Check, Sequence[Expectation]]]) -> list[str]:
    return sorted({x.column for _, es in planned for x in es if x.column is not None})


def _validate_frame(
    frame: pl.DataFrame, planned: Sequence[tuple[Check, Sequence[Expectation]]]
) -> dict[tuple, ExpectationResult]:
    columns = _columns(planned)
    return _validator().validate(
        frame.select(columns) if columns else frame, [x for _, es in planned for x in es]
    )


def validate_here(frame: pl.DataFrame, expectations: Sequence[Expectation]) -> dict[tuple, Any]:
    """Validate in this process (the GE process's side of `_validate_frame`)."""
    gx, batch_definition = load_great_expectations()
    batch = batch_definition.get_batch(batch_parameters={"dataframe": _to_pandas(frame)})
    return _validate(gx, batch, expectations)


def _to_pandas(frame: pl.DataFrame) -> Any:
    """`frame` for GE, sharing memory where it can: an integer or float column without
    nulls becomes a read-only NumPy view of Polars' own buffer (no copy when the column is
    one chunk); any other column converts as `to_pandas` converts it. The dtypes are
    those `to_pandas` gives, without its copy (~0.4 GiB for a 5M-trade day)."""
    import pandas as pd

    columns = {}
    for series in frame.get_columns():
        plain = (series.dtype.is_integer() or series.dtype.is_float()) and not series.null_count()
        columns[series.name] = series.to_numpy() if plain else series.to_pandas()
    return pd.DataFrame(columns, copy=False)


def _key(expectation: Expectation) -> tuple[str, str]:
    return expectation.kind, repr(sorted(expectation.kwargs.items()))


def _validate(gx: Any, batch: Any, expectations: Sequence[Expectation]) -> dict[tuple, Any]:
    """Validate the distinct `expectations` as one suite; each one's result by `_key`.

    GE returns the results of a suite in no guaranteed order (an expectation that raised
    comes first), so each result is matched back by its type and the kwargs given.
    """
    distinct = {_key(e): e for e in expectations}
    if not distinct:
        return {}
    configs = {
        key: getattr(gx.expectations, e.kind)(**e.kwargs).configuration
        for key, e in distinct.items()
    }
    suite = gx.ExpectationSuite(name="marketlake", expectations=list(configs.values()))
    validated = batch.validate(
        suite,
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_SIZE},
    )
    unmatched = list(validated.results)
    results = {}
    for key, config in configs.items():
        for i, result in enumerate(unmatched):
            found = result.expectation_config
            if found.type == config.type and all(
                found.kwargs.get(name) == value for name, value in config.kwargs.items()
            ):
                results[key] = unmatched.pop(i)
                break
        else:
            raise RuntimeError(f"Great Expectations returned no result for {config.type}")
    return results
