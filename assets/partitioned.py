"""What every instrument-day asset shares: keys, checks and metadata, one partition at a time.

A run may carry one partition (the CLI, a click in the UI) or a batch of them (a backfill
under `BackfillPolicy.multi_run`). Either way each partition is written and checked on its
own: single-partition runs attach the checks to the materialization; batch runs record
every partition's check evaluations against that partition and summarize the batch in the
step's own check outputs.
"""

import datetime as dt
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from marketlake.quality import CheckOutcome


@dataclass(frozen=True)
class PartitionKey:
    date: dt.date
    symbol: str

    @property
    def exchange(self) -> str:
        """Coinbase products read BASE-QUOTE; Binance symbols never hold a dash."""
        return "coinbase" if "-" in self.symbol else "binance"

    @classmethod
    def parse(cls, key: str) -> "PartitionKey":
        """`2024-03-01|BTCUSDT` -> PartitionKey; Dagster sorts the date dimension first."""
        try:
            date_text, symbol = key.split("|")
            return cls(dt.date.fromisoformat(date_text), symbol)
        except ValueError as error:
            raise ValueError(
                f"malformed partition key {key!r}: expected YYYY-MM-DD|SYMBOL"
            ) from error

    def lake_partition(self) -> dict[str, Any]:
        """The Delta partition values of this instrument-day."""
        return {"exchange": self.exchange, "symbol": self.symbol, "date": self.date}

    def __str__(self) -> str:
        return f"{self.date.isoformat()}|{self.symbol}"


@dataclass(frozen=True)
class CheckDef:
    name: str
    description: str
    severity: str = "ERROR"

    @property
    def blocking(self) -> bool:
        return self.severity == "ERROR"


@dataclass
class PartitionResult:
    """One partition's outcome: its materialization metadata and its check outcomes."""

    metadata: dict[str, Any] = field(default_factory=dict)
    outcomes: list[CheckOutcome] = field(default_factory=list)
    summary: str = ""


def check_specs(
    asset: str, checks: Sequence[CheckDef], partitions_def: dg.PartitionsDefinition
) -> list[dg.AssetCheckSpec]:
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


def materialize_partitions(
    context: dg.AssetExecutionContext,
    checks: Sequence[CheckDef],
    work: Callable[[PartitionKey], PartitionResult],
) -> Iterator[dg.MaterializeResult]:
    """Run `work` for every partition of the run and report it the way Dagster shows best."""
    asset_key = context.asset_key
    results: dict[str, PartitionResult] = {}
    for key in context.partition_keys:
        result = work(PartitionKey.parse(key))
        results[key] = result
        context.log.info(f"{key}: {result.summary}")

    if len(results) == 1:
        (result,) = results.values()
        yield dg.MaterializeResult(
            metadata=dagster_metadata(result.metadata),
            check_results=[_check_result(o) for o in _complete(result.outcomes, checks)],
        )
        return

    for key, result in results.items():
        for outcome in _complete(result.outcomes, checks):
            context.log_event(
                dg.AssetCheckEvaluation(
                    asset_key=asset_key,
                    check_name=outcome.name,
                    passed=outcome.passed,
                    severity=dg.AssetCheckSeverity(outcome.severity),
                    description=outcome.description,
                    metadata=dagster_metadata(
                        {"failing_rows": outcome.failing_rows, **outcome.metadata}
                    ),
                    partition=key,
                )
            )
    yield dg.MaterializeResult(
        metadata={
            "partitions": len(results),
            "per_partition": dg.MetadataValue.md(_batch_table(results)),
        },
        check_results=[_batch_check_result(check, results) for check in checks],
    )


def _complete(outcomes: list[CheckOutcome], checks: Sequence[CheckDef]) -> list[CheckOutcome]:
    """Every declared check gets a result; one that did not apply passes and says so."""
    by_name = {o.name: o for o in outcomes}
    return [
        by_name.get(check.name)
        or CheckOutcome(
            check.name,
            passed=True,
            severity=check.severity,  # type: ignore[arg-type]
            description=check.description,
            metadata={"note": "not applicable to this partition"},
        )
        for check in checks
    ]


def _check_result(outcome: CheckOutcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=outcome.name,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity(outcome.severity),
        description=outcome.description,
        metadata=dagster_metadata({"failing_rows": outcome.failing_rows, **outcome.metadata}),
    )


def _batch_check_result(
    check: CheckDef, results: Mapping[str, PartitionResult]
) -> dg.AssetCheckResult:
    failed = [
        key
        for key, result in results.items()
        for outcome in result.outcomes
        if outcome.name == check.name and not outcome.passed
    ]
    return dg.AssetCheckResult(
        check_name=check.name,
        passed=not failed,
        severity=dg.AssetCheckSeverity(check.severity),
        description=f"{check.description} (batch of {len(results)} partitions)",
        metadata={"partitions_checked": len(results), "failed_partitions": failed[:50]},
    )


def dagster_metadata(values: Mapping[str, Any]) -> dict[str, Any]:
    """Dagster metadata takes plain scalars; nested values are shown as JSON, dates as text."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, dict | list | tuple):
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


def _batch_table(results: Mapping[str, PartitionResult]) -> str:
    lines = ["| partition | summary |", "|---|---|"]
    lines += [f"| {_escape_pipes(key)} | {r.summary} |" for key, r in results.items()]
    return "\n".join(lines)


def _escape_pipes(text: str) -> str:
    return text.replace("|", "\\|")
