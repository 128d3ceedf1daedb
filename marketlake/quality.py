"""Great Expectations behind one small function: a frame and expectations in, outcomes out.

GE validates pandas frames, takes seconds to import and draws progress bars by default, so
this module imports it only when a validation runs, converts only the columns an
expectation reads, and runs an ephemeral context with progress bars and analytics off:
no files, no network, no telemetry.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

import polars as pl

Severity = Literal["ERROR", "WARN"]

#: How many failing values a check reports (enough to diagnose, small enough for the UI).
SAMPLE_SIZE = 10


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


@dataclass(frozen=True)
class Check:
    """A named data-quality check: the expectations it runs and how much a failure matters."""

    name: str
    description: str
    expectations: Sequence[Expectation]
    severity: Severity = "ERROR"


@cache
def _context() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_definition = (
        context.data_sources.add_pandas("marketlake")
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("whole")
    )
    return gx, batch_definition


def run_checks(frame: pl.DataFrame, checks: Sequence[Check]) -> list[CheckOutcome]:
    """Validate `frame` against every check; never raises for failing data.

    Each check's metadata says how many rows failed and shows a sample of the failing
    values, so a failed check in the Dagster UI explains itself.
    """
    gx, batch_definition = _context()
    columns = sorted({e.column for c in checks for e in c.expectations if e.column is not None})
    pandas_frame = frame.select(columns).to_pandas() if columns else frame.to_pandas()
    batch = batch_definition.get_batch(batch_parameters={"dataframe": pandas_frame})

    outcomes = []
    for check in checks:
        passed = True
        failing = 0
        details: dict[str, Any] = {}
        for expectation in check.expectations:
            result = batch.validate(
                getattr(gx.expectations, expectation.kind)(**expectation.kwargs),
                result_format={"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_SIZE},
            )
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
                    "sample": [
                        _plain(v) for v in result.result.get("partial_unexpected_list") or []
                    ],
                    "observed": _plain(result.result.get("observed_value")),
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


def _plain(value: Any) -> Any:
    """JSON-friendly values for metadata (numpy scalars and timestamps become plain)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)
