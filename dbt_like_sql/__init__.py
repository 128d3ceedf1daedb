"""A small, faithful subset of dbt on Polars SQL: parse -> manifest -> compile -> run.

`models/*.sql` are Jinja-templated SELECTs using `{{ ref('name') }}`, partition variables
and the macros of `macros/*.sql`; `models/*.yml` hold descriptions and data tests in dbt's
format. The engine imports no Dagster: the orchestration layer maps `Manifest.models` to
assets (deps from `Model.refs`, checks from `Model.tests`): each asset calls `materialize`
and evaluates `run_tests` on the rows it wrote; `build` runs a whole partition in
dependency order.
"""

from __future__ import annotations

from dbt_like_sql.data_tests import TestResult, evaluate_test, run_tests
from dbt_like_sql.errors import (
    CycleError,
    DbtLikeError,
    DuplicateModelError,
    ModelError,
    PartitionError,
    ProjectError,
    UnknownRefError,
)
from dbt_like_sql.execute import (
    SOURCE_SCHEMAS,
    FrameStore,
    build,
    materialize,
    model_rows,
    run_model,
)
from dbt_like_sql.manifest import (
    PARTITION_KEYS,
    Column,
    Manifest,
    Model,
    ModelConfig,
    Source,
    TestSpec,
)
from dbt_like_sql.parser import MACROS_DIR, MODELS_DIR, parse_project
from dbt_like_sql.partition import validate_partition


def load_manifest() -> Manifest:
    """Parse the project's own models and macros (sources are declared in models/schema.yml)."""
    return parse_project(MODELS_DIR, macros_dir=MACROS_DIR)


__all__ = [
    "MACROS_DIR",
    "MODELS_DIR",
    "PARTITION_KEYS",
    "SOURCE_SCHEMAS",
    "Column",
    "CycleError",
    "DbtLikeError",
    "DuplicateModelError",
    "FrameStore",
    "Manifest",
    "Model",
    "ModelConfig",
    "ModelError",
    "PartitionError",
    "ProjectError",
    "Source",
    "TestResult",
    "TestSpec",
    "UnknownRefError",
    "build",
    "evaluate_test",
    "load_manifest",
    "materialize",
    "model_rows",
    "parse_project",
    "run_model",
    "run_tests",
    "validate_partition",
]
