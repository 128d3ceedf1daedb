"""`marketlake migrate`: carry a Dagster instance from bare-symbol keys to instrument keys.

Instances written before partition keys named their venue hold a `symbols` dynamic
partitions definition and keys like `2024-03-01|BTCUSDT`. The migration is additive and
idempotent; it changes nothing it finds and can be run again at any time:

- every legacy symbol becomes an `instruments` partition, `VENUE:SYMBOL`;
- every asset's latest materialization of each legacy key is recorded again, runless,
  under the new key, with the same metadata, description and data-version tags (its
  description says where it came from), unless the new key has one already;
- every check's latest result (passed or failed) of each legacy key is recorded again
  under the new key, pointing at that materialization, unless the new key has one.

Run history, older materializations, observations and the legacy partitions themselves
stay as they were (the UI shows them under the old keys). The lake needs nothing: its
Delta tables have always had an `exchange` partition column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,  # not re-exported by `dagster`
)
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from rich.console import Console

from marketlake.instruments import Instrument
from marketlake.schemas import InvalidSymbolError
from orchestration.errors import CommandFailed
from orchestration.partitions import INSTRUMENT, LEGACY_SYMBOLS, instrument_partitions
from orchestration.settings import Settings

#: Records read per query while scanning an asset's or a check's history.
PAGE = 1000
#: Dagster's own tags of a multi-partition's dimensions; the migrated event gets new ones.
_DIMENSION_TAG = "dagster/partition/"


def legacy_instrument(symbol: str) -> Instrument:
    """The instrument a `symbols` partition meant: the reading of keys written before venues
    were explicit, when Binance (no dash) and Coinbase (BASE-QUOTE) were the only venues
    given partitions. This is the one place a venue is read from a symbol's shape."""
    return Instrument.parse(symbol, "coinbase" if "-" in symbol else "binance")


@dataclass
class Migration:
    """What one `migrate` did, for the command to print."""

    legacy_symbols: int = 0
    instruments_added: list[str] = field(default_factory=list)
    materializations: int = 0
    materializations_present: int = 0
    evaluations: int = 0
    evaluations_present: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.instruments_added or self.materializations or self.evaluations)


def migrate(
    instance: dg.DagsterInstance, settings: Settings, out: Console | None = None
) -> Migration:
    """Migrate `instance` (see the module's docstring); prints what it did to `out`."""
    done = Migration()
    legacy = sorted(instance.get_dynamic_partitions(LEGACY_SYMBOLS))
    done.legacy_symbols = len(legacy)
    if not legacy:
        _say(out, "nothing to migrate: this instance has no legacy `symbols` partitions")
        return done
    renamed = _renamed(legacy)

    existing = set(instance.get_dynamic_partitions(instrument_partitions.name))
    done.instruments_added = [str(i) for i in renamed.values() if str(i) not in existing]
    if done.instruments_added:
        instance.add_dynamic_partitions(instrument_partitions.name, done.instruments_added)

    def new_key(partition: str | None) -> str | None:
        """The instrument key of a legacy key, None for any other partition."""
        date, separator, symbol = (partition or "").partition("|")
        if not separator or symbol not in renamed:
            return None
        return f"{date}|{renamed[symbol]}"

    _carry_materializations(instance, new_key, done)
    _carry_evaluations(instance, _check_keys(settings), new_key, done)
    _report(out, done, renamed)
    return done


def _carry_materializations(
    instance: dg.DagsterInstance, new_key: Callable[[str], str | None], done: Migration
) -> None:
    """Each asset's latest materialization of each legacy key, again under its new key."""
    for asset_key in sorted(instance.get_asset_keys(), key=lambda k: k.to_user_string()):
        latest = _latest_by_partition(_materializations(instance, asset_key))
        for old, record in sorted(latest.items()):
            new = new_key(old)
            if new is None:
                continue
            if new in latest:
                done.materializations_present += 1
                continue
            instance.report_runless_asset_event(_moved(record, old, new))
            done.materializations += 1


def _carry_evaluations(
    instance: dg.DagsterInstance,
    check_keys: Iterable[dg.AssetCheckKey],
    new_key: Callable[[str], str | None],
    done: Migration,
) -> None:
    """Each check's latest result of each legacy key, again under its new key, about the
    latest materialization of that key."""
    targets: dict[dg.AssetKey, dict] = {}  # per asset, its latest materialization per key
    for check_key in check_keys:
        latest = _latest_by_partition(_evaluations(instance, check_key))
        for old, record in sorted(latest.items()):
            new = new_key(old)
            if new is None:
                continue
            if new in latest:
                done.evaluations_present += 1
                continue
            if check_key.asset_key not in targets:
                materialized = _materializations(instance, check_key.asset_key)
                targets[check_key.asset_key] = _latest_by_partition(materialized)
            target = targets[check_key.asset_key].get(new)
            evaluation = record.event.dagster_event.event_specific_data
            instance.report_runless_asset_event(
                dg.AssetCheckEvaluation(
                    asset_key=evaluation.asset_key,
                    check_name=evaluation.check_name,
                    passed=evaluation.passed,
                    metadata=evaluation.metadata,
                    target_materialization_data=None if target is None else _target(target),
                    severity=evaluation.severity,
                    description=evaluation.description,
                    blocking=evaluation.blocking,
                    partition=new,
                )
            )
            done.evaluations += 1


def _renamed(legacy: Iterable[str]) -> dict[str, Instrument]:
    """{legacy symbol: instrument}, all or nothing: a symbol no venue spells that way stops
    the migration before anything is written."""
    renamed, bad = {}, []
    for symbol in legacy:
        try:
            instrument = legacy_instrument(symbol)
        except InvalidSymbolError as error:
            bad.append(f"{symbol!r} ({error})")
            continue
        if instrument.symbol != symbol:  # never stored un-normalized; refuse to guess
            bad.append(f"{symbol!r} (expected {instrument.symbol})")
            continue
        renamed[symbol] = instrument
    if bad:
        raise CommandFailed(
            f"legacy `{LEGACY_SYMBOLS}` partitions that are no venue's spelling, nothing "
            f"migrated: {', '.join(bad)}"
        )
    return renamed


def _materializations(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey
) -> Iterator[dg.EventLogRecord]:
    """Every materialization of `asset_key`, newest first."""
    cursor = None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key), limit=PAGE, cursor=cursor
        )
        yield from page.records
        if not page.has_more:
            return
        cursor = page.cursor


def _evaluations(instance: dg.DagsterInstance, check_key: dg.AssetCheckKey) -> Iterator:
    """Every completed execution of `check_key` (passed or failed), newest first."""
    cursor = None
    finished = {
        AssetCheckExecutionRecordStatus.SUCCEEDED,
        AssetCheckExecutionRecordStatus.FAILED,
    }
    while True:
        page = instance.event_log_storage.get_asset_check_execution_history(
            check_key, limit=PAGE, cursor=cursor, status=finished
        )
        yield from (record for record in page if record.event is not None)
        if len(page) < PAGE:
            return
        cursor = page[-1].id


def _latest_by_partition(records: Iterable) -> dict[str, object]:
    """{partition: newest record} of records given newest first."""
    latest: dict[str, object] = {}
    for record in records:
        partition = _partition_of(record)
        if partition is not None and partition not in latest:
            latest[partition] = record
    return latest


def _partition_of(record) -> str | None:
    if isinstance(record, dg.EventLogRecord):
        return record.partition_key
    return record.partition


def _moved(record: dg.EventLogRecord, old: str, new: str) -> dg.AssetMaterialization:
    """`record`'s materialization, as of the instrument key `new`."""
    materialization = record.asset_materialization
    assert materialization is not None
    date, _, instrument = new.partition("|")
    kept = (materialization.tags or {}).items()
    tags = {k: v for k, v in kept if not k.startswith(_DIMENSION_TAG)}
    tags |= {f"{_DIMENSION_TAG}date": date, f"{_DIMENSION_TAG}{INSTRUMENT}": instrument}
    origin = f"migrated from {old} (run {record.run_id[:8] or 'none'})"
    return dg.AssetMaterialization(
        asset_key=materialization.asset_key,
        description=(
            f"{materialization.description}; {origin}" if materialization.description else origin
        ),
        metadata=materialization.metadata,
        partition=new,
        tags=tags,
    )


def _target(record: dg.EventLogRecord) -> AssetCheckEvaluationTargetMaterializationData:
    """A materialization as the target of a check result (what the result is about)."""
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
    )


def _check_keys(settings: Settings) -> list[dg.AssetCheckKey]:
    """Every check the definitions declare (the instance has no listing of its own)."""
    from orchestration.definitions import build_definitions

    keys = build_definitions(settings).resolve_asset_graph().asset_check_keys
    return sorted(keys, key=lambda k: (k.asset_key.to_user_string(), k.name))


def _report(out: Console | None, done: Migration, renamed: dict[str, Instrument]) -> None:
    pairs = ", ".join(f"{symbol} -> {instrument}" for symbol, instrument in renamed.items())
    _say(out, f"legacy symbol partitions: {done.legacy_symbols} ({pairs})")
    _say(
        out,
        f"instrument partitions added: {len(done.instruments_added)}"
        + (f" ({', '.join(done.instruments_added)})" if done.instruments_added else ""),
    )
    _say(
        out,
        f"materializations recorded under the new keys: {done.materializations}"
        + (
            f" ({done.materializations_present} already there)"
            if done.materializations_present
            else ""
        ),
    )
    _say(
        out,
        f"check results recorded under the new keys: {done.evaluations}"
        + (f" ({done.evaluations_present} already there)" if done.evaluations_present else ""),
    )
    _say(out, "migrated" if done.changed else "already migrated: nothing to do")


def _say(out: Console | None, text: str) -> None:
    if out is not None:
        out.print(text, highlight=False, soft_wrap=True)
