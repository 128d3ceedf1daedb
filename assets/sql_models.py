"""One Dagster asset per dbt_like_sql model, the way dagster-dbt maps dbt models.

Keys are the model names, deps come from each model's refs, descriptions from schema.yml,
and every data test becomes an asset check (`error` -> blocking ERROR, `warn` -> WARN),
declared once, in schema.yml. Dropping a new `.sql` file (and its tests) into
`dbt_like_sql/models/` adds an asset with no Python edited.

A model's rows are tested before they are written: the engine's `model_rows` runs the
model and checks its rows lie in the partition, its data tests run on them, and the lake
replaces the partition only if no `error` test failed (the previous rows stay otherwise).
"""

import time

import dagster as dg

import dbt_like_sql as dls
from assets.chart_metadata import model_chart_metadata
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
    partition = dls.validate_partition(key.lake_partition())
    frame = dls.model_rows(manifest, name, lake, partition)
    outcomes = [_outcome(result) for result in dls.run_tests(manifest, name, frame)]
    version = None
    if not blocking_failures(outcomes):
        partition_by = manifest.model(name).config.partition_by
        version = lake.replace_partition(name, frame, partition, partition_by)
    seconds = time.perf_counter() - started
    written = version is not None
    return PartitionResult(
        metadata={
            **model_chart_metadata(name, frame, key, lake),
            "rows": frame.height,
            "delta_version": version,
            "duration_s": round(seconds, 3),
        },
        outcomes=outcomes,
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
