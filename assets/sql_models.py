"""One Dagster asset per dbt_like_sql model, the way dagster-dbt maps dbt models.

Keys are the model names, deps come from each model's refs, descriptions from schema.yml,
and the data tests become asset checks, one per kind of test (`not_null`, `accepted_range`,
...; `error` -> blocking ERROR, `warn` -> WARN), declared once, in schema.yml. Dropping a
new `.sql` file (and its tests) into `dbt_like_sql/models/` adds an asset with no Python
edited.

A model's rows are tested before they are written: the engine's `model_rows` runs the
model and checks its rows lie in the partition, its data tests run on them, and the lake
replaces the partition only if no `error` test failed (the previous rows stay otherwise).
"""

import time
from collections import defaultdict
from collections.abc import Sequence

import dagster as dg

import dbt_like_sql as dls
from assets.chart_metadata import model_chart_metadata
from assets.partition_key import PartitionKey
from assets.partitioned import (
    PARTITIONS_PER_RUN,
    PartitionResult,
    PendingWrite,
    check_specs,
    materialize_partitions,
    write_now,
)
from marketlake.lake import Lake
from marketlake.quality import Check, CheckOutcome, blocking_failures


def build_sql_assets(
    partitions_def: dg.MultiPartitionsDefinition, manifest: dls.Manifest | None = None
) -> list[dg.AssetsDefinition]:
    manifest = manifest or dls.load_manifest()
    return [_model_asset(manifest, manifest.model(name), partitions_def) for name in manifest.order]


def model_checks(model: dls.Model) -> list[Check]:
    """A model's Dagster checks: its schema.yml tests grouped by kind and severity.

    Each check is stored as two events per instrument-day (planned, evaluated), so one
    check per test (83 for the five models) made Dagster's bookkeeping the bulk of a build;
    a check per kind (`not_null`, `accepted_range`, ...: 26) keeps each failure findable,
    since the check's metadata has every test's own result, at a third of the cost.
    """
    return [
        Check(name, _describe(specs), "ERROR" if specs[0].severity == "error" else "WARN")
        for name, specs in grouped_tests(model.tests).items()
    ]


def grouped_tests(tests: Sequence[dls.TestSpec]) -> dict[str, list[dls.TestSpec]]:
    """Tests by check name: the test's kind, suffixed `_warn` where a kind has both."""
    by_kind: dict[tuple[str, str], list[dls.TestSpec]] = defaultdict(list)
    for spec in tests:
        by_kind[(spec.test, spec.severity)].append(spec)
    severities = defaultdict(set)
    for kind, severity in by_kind:
        severities[kind].add(severity)
    return {
        kind if len(severities[kind]) == 1 or severity == "error" else f"{kind}_{severity}": specs
        for (kind, severity), specs in by_kind.items()
    }


def _describe(specs: Sequence[dls.TestSpec]) -> str:
    columns = [spec.column for spec in specs if spec.column]
    on = f" on {', '.join(columns)}" if columns else ""
    return f"{specs[0].test}{on} ({len(specs)} test{'s' if len(specs) > 1 else ''})"


def _outcomes(model: dls.Model, results: Sequence[dls.TestResult]) -> list[CheckOutcome]:
    """One outcome per check: passed if each of its tests passed; every test's own result
    (and the failing rows' sample) in the metadata."""
    by_name = {result.name: result for result in results}
    outcomes = []
    for name, specs in grouped_tests(model.tests).items():
        group = [by_name[spec.name] for spec in specs if spec.name in by_name]
        failed = [r for r in group if not r.passed]
        outcomes.append(
            CheckOutcome(
                name,
                passed=not failed,
                severity="ERROR" if specs[0].severity == "error" else "WARN",
                description="; ".join(r.message or r.name for r in failed) or _describe(specs),
                failing_rows=sum(r.failing_rows for r in group),
                metadata={
                    "tests": {r.name: "passed" if r.passed else "failed" for r in group},
                    **{f"{r.name}_sample": _plain_rows(r.sample) for r in failed if r.sample},
                },
            )
        )
    return outcomes


def _plain_rows(sample: Sequence[dict]) -> list[dict[str, str]]:
    return [{k: str(v) for k, v in row.items()} for row in sample]


def model_day(manifest: dls.Manifest, name: str, key: PartitionKey, lake: Lake) -> PartitionResult:
    """Run model `name` for one instrument-day and test its rows; the rows are pending a
    write unless an ERROR test refused them."""
    started = time.perf_counter()
    partition = dls.validate_partition(key.lake_partition())
    frame = dls.model_rows(manifest, name, lake, partition)
    outcomes = _outcomes(manifest.model(name), dls.run_tests(manifest, name, frame))
    written = not blocking_failures(outcomes)
    seconds = time.perf_counter() - started
    partition_by = manifest.model(name).config.partition_by
    return PartitionResult(
        metadata={
            **model_chart_metadata(name, frame, key, lake),
            "rows": frame.height,
            "duration_s": round(seconds, 3),
        },
        outcomes=outcomes,
        summary=f"{frame.height:,} rows{'' if written else ' refused by their tests'} "
        f"in {seconds:.2f}s",
        written=written,
        pending=PendingWrite(name, frame, partition, partition_by) if written else None,
    )


def run_model_partition(manifest: dls.Manifest, name: str, key: PartitionKey, lake: Lake):
    """Run model `name` for one instrument-day, test its rows, write them if they pass."""
    return write_now(model_day(manifest, name, key, lake), lake)


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
            context, checks, lambda key: model_day(manifest, name, key, lake), lake
        )

    return _asset
