"""One Dagster asset per dbt_like_sql model, the way dagster-dbt maps dbt models.

Keys are the model names, deps come from each model's refs, descriptions from schema.yml,
and every data test becomes an asset check (`error` -> blocking ERROR, `warn` -> WARN).
Dropping a new `.sql` file (and its tests) into `dbt_like_sql/models/` adds an asset with
no Python edited.
"""

import time

import dagster as dg

import dbt_like_sql as dls
from assets.partitioned import (
    CheckDef,
    PartitionKey,
    PartitionResult,
    check_specs,
    materialize_partitions,
)
from marketlake.lake import Lake
from marketlake.quality import CheckOutcome

PARTITIONS_PER_RUN = 30


def build_sql_assets(
    partitions_def: dg.MultiPartitionsDefinition, manifest: dls.Manifest | None = None
) -> list[dg.AssetsDefinition]:
    manifest = manifest or dls.load_manifest()
    return [_model_asset(manifest, manifest.model(name), partitions_def) for name in manifest.order]


def model_checks(model: dls.Model) -> list[CheckDef]:
    return [
        CheckDef(
            spec.name,
            f"{spec.test}" + (f" on {spec.column}" if spec.column else ""),
            "ERROR" if spec.severity == "error" else "WARN",
        )
        for spec in model.tests
    ]


def run_model_partition(manifest: dls.Manifest, name: str, key: PartitionKey, lake: Lake):
    started = time.perf_counter()
    frame = dls.materialize(manifest, name, lake, key.lake_partition())
    results = dls.run_tests(manifest, name, frame)
    seconds = time.perf_counter() - started
    outcomes = [
        CheckOutcome(
            r.name,
            passed=r.passed,
            severity="ERROR" if r.severity == "error" else "WARN",
            description=r.message or r.test,
            failing_rows=r.failing_rows,
            metadata={"sample": [{k: str(v) for k, v in row.items()} for row in r.sample]}
            if r.sample
            else {},
        )
        for r in results
    ]
    return PartitionResult(
        metadata={"rows": frame.height, "duration_s": round(seconds, 3)},
        outcomes=outcomes,
        summary=f"{frame.height:,} rows in {seconds:.2f}s",
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
