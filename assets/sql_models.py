"""One Dagster asset per dbt_like_sql model, the way dagster-dbt maps dbt models.

Keys are the model names, deps come from each model's refs, descriptions from schema.yml,
and every data test becomes an asset check (`error` -> blocking ERROR, `warn` -> WARN),
declared once, in schema.yml. Dropping a new `.sql` file (and its tests) into
`dbt_like_sql/models/` adds an asset with no Python edited.

A model's rows are tested before they are written: the engine's `materialize` runs the
model and validates its partition columns, then hands the frame to the store's
`replace_partition`; here that store is the lake behind a gate that runs the data tests
first and commits only if no `error` test failed (the previous rows stay otherwise).
"""

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import polars as pl

import dbt_like_sql as dls
from assets.partitioned import (
    PARTITIONS_PER_RUN,
    PartitionKey,
    PartitionResult,
    check_specs,
    materialize_partitions,
)
from marketlake.lake import Lake
from marketlake.quality import Check, CheckOutcome, blocking_failures


def build_sql_assets(
    partitions_def: dg.MultiPartitionsDefinition, manifest: dls.Manifest | None = None
) -> list[dg.AssetsDefinition]:
    manifest = manifest or dls.load_manifest()
    return [_model_asset(manifest, manifest.model(name), partitions_def) for name in manifest.order]


def model_checks(model: dls.Model) -> list[Check]:
    """A model's checks, from its schema.yml tests (evaluated by the engine, not GE)."""
    return [
        Check(
            spec.name,
            f"{spec.test}" + (f" on {spec.column}" if spec.column else ""),
            "ERROR" if spec.severity == "error" else "WARN",
        )
        for spec in model.tests
    ]


@dataclass
class _TestedStore:
    """The lake, with each partition write gated by the model's data tests."""

    lake: Lake
    manifest: dls.Manifest
    model: str
    outcomes: list[CheckOutcome] = field(default_factory=list)
    version: int | None = None

    def exists(self, table: str) -> bool:
        return self.lake.exists(table)

    def scan(self, table: str, schema: pl.Schema | None = None, **partition: Any) -> pl.LazyFrame:
        return self.lake.scan(table, schema, **partition)

    def replace_partition(
        self,
        table: str,
        frame: pl.DataFrame,
        partition: Mapping[str, Any],
        partition_by: Sequence[str],
    ) -> int:
        self.outcomes = [_outcome(r) for r in dls.run_tests(self.manifest, self.model, frame)]
        if blocking_failures(self.outcomes):
            return -1  # refused: nothing committed
        self.version = self.lake.replace_partition(table, frame, partition, partition_by)
        return self.version


def _outcome(result: dls.TestResult) -> CheckOutcome:
    return CheckOutcome(
        result.name,
        passed=result.passed,
        severity="ERROR" if result.severity == "error" else "WARN",
        description=result.message or result.test,
        failing_rows=result.failing_rows,
        metadata={"sample": [{k: str(v) for k, v in row.items()} for row in result.sample]}
        if result.sample
        else {},
    )


def run_model_partition(manifest: dls.Manifest, name: str, key: PartitionKey, lake: Lake):
    """Run model `name` for one instrument-day, test its rows, write them if they pass."""
    started = time.perf_counter()
    store = _TestedStore(lake, manifest, name)
    frame = dls.materialize(manifest, name, store, key.lake_partition())
    seconds = time.perf_counter() - started
    written = store.version is not None
    return PartitionResult(
        metadata={
            "rows": frame.height,
            "delta_version": store.version,
            "duration_s": round(seconds, 3),
        },
        outcomes=store.outcomes,
        summary=f"{frame.height:,} rows{'' if written else ' refused by their tests'} "
        f"in {seconds:.2f}s",
        written=written,
    )


def _model_asset(
    manifest: dls.Manifest, model: dls.Model, partitions_def: dg.MultiPartitionsDefinition
) -> dg.AssetsDefinition:
    checks = model_checks(model)
    name = model.name

    @dg.asset(
        name=name,
        group_name="marts",
        deps=list(model.refs),
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.multi_run(PARTITIONS_PER_RUN),
        check_specs=check_specs(name, checks, partitions_def),
        kinds={"sql", "polars", "deltalake"},
        description=model.description,
        metadata={
            "table": name,
            "sql_file": str(model.path.name),
            "compiled_sql": dg.MetadataValue.md(f"```sql\n{model.raw_sql}\n```"),
            "columns": dg.TableSchema(
                columns=[
                    dg.TableColumn(column.name, description=column.description or None)
                    for column in model.columns.values()
                ]
            ),
        },
    )
    def _asset(context: dg.AssetExecutionContext, lake: dg.ResourceParam[Lake]):
        yield from materialize_partitions(
            context, checks, lambda key: run_model_partition(manifest, name, key, lake)
        )

    return _asset
