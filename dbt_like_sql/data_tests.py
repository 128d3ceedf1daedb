"""Evaluate a model's schema.yml data tests on its output frame, in Polars.

Semantics follow dbt / dbt_utils: a test selects the failing rows and passes when there
are none. As in dbt, nulls fail only `not_null`; the other column tests ignore them.
Each result maps to one asset check (name, severity) in the orchestration layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import polars as pl

from dbt_like_sql.manifest import Manifest, Severity, TestSpec

#: Failing rows kept in a result, enough to diagnose without flooding check metadata.
SAMPLE_ROWS: Final = 5


@dataclass(frozen=True)
class TestResult:
    __test__ = False  # not a pytest class, despite the name

    name: str
    column: str | None
    passed: bool
    failing_rows: int
    sample: list[dict[str, Any]] = field(default_factory=list)
    test: str = ""
    severity: Severity = "error"
    message: str = ""


def run_tests(manifest: Manifest, name: str, frame: pl.DataFrame) -> list[TestResult]:
    """Every data test of model `name`, evaluated on `frame`, in declaration order."""
    return [evaluate_test(spec, frame) for spec in manifest.model(name).tests]


def evaluate_test(spec: TestSpec, frame: pl.DataFrame) -> TestResult:
    """One test; a missing column or a bad expression fails the test with a message."""
    try:
        failing = frame.filter(_FAILING[spec.test](spec))
    except (
        pl.exceptions.ColumnNotFoundError,
        pl.exceptions.SQLInterfaceError,
        pl.exceptions.SQLSyntaxError,
    ) as exc:
        return TestResult(
            spec.name, spec.column, False, frame.height, [], spec.test, spec.severity, str(exc)
        )
    count = failing.height
    message = "" if count == 0 else f"{count} row(s) fail {spec.name}"
    return TestResult(
        name=spec.name,
        column=spec.column,
        passed=count == 0,
        failing_rows=count,
        sample=failing.head(SAMPLE_ROWS).to_dicts(),
        test=spec.test,
        severity=spec.severity,
        message=message,
    )


# --- one predicate per test: True selects a failing row -------------------------------------


def _not_null(spec: TestSpec) -> pl.Expr:
    return pl.col(_column(spec)).is_null()


def _unique(spec: TestSpec) -> pl.Expr:
    column = pl.col(_column(spec))
    return column.is_not_null() & column.is_duplicated()


def _accepted_values(spec: TestSpec) -> pl.Expr:
    column = pl.col(_column(spec))
    return column.is_not_null() & ~column.is_in(list(spec.kwargs["values"]))


def _accepted_range(spec: TestSpec) -> pl.Expr:
    column = pl.col(_column(spec))
    inclusive = spec.kwargs.get("inclusive", True)
    inside = pl.lit(True)
    if (low := spec.kwargs.get("min_value")) is not None:
        inside &= column >= low if inclusive else column > low
    if (high := spec.kwargs.get("max_value")) is not None:
        inside &= column <= high if inclusive else column < high
    return column.is_not_null() & ~inside


def _unique_combination(spec: TestSpec) -> pl.Expr:
    return pl.struct(spec.kwargs["combination_of_columns"]).is_duplicated()


def _expression_is_true(spec: TestSpec) -> pl.Expr:
    """dbt_utils: rows where the SQL expression is false (null is not a failure)."""
    expression = spec.kwargs["expression"]
    if spec.column is not None:  # column-level form: `expression: ">= 0"`
        expression = f"{spec.column} {expression}"
    return (~pl.sql_expr(expression)).fill_null(False)


def _column(spec: TestSpec) -> str:
    if spec.column is None:  # the parser only lets column tests under a column
        raise ValueError(f"{spec.test} needs a column")
    return spec.column


_FAILING: Final[dict[str, Callable[[TestSpec], pl.Expr]]] = {
    "not_null": _not_null,
    "unique": _unique,
    "accepted_values": _accepted_values,
    "accepted_range": _accepted_range,
    "unique_combination_of_columns": _unique_combination,
    "expression_is_true": _expression_is_true,
}
