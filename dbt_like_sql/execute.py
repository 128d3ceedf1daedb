"""Run compiled models on Polars SQL against the lake, one (exchange, symbol, day) at a time.

Each ref is registered as a lazy Delta scan pruned to the partition, so a model reads one
day of one symbol however large its inputs grow; the query stays lazy until the final
collect, letting Polars push projections and filters into the scans.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Protocol

import polars as pl

from dbt_like_sql.errors import ModelError
from dbt_like_sql.manifest import PARTITION_KEYS, Manifest, Model
from dbt_like_sql.parser import PARTITION_TABLE
from dbt_like_sql.partition import partition_frame, validate_partition
from marketlake import schemas

#: Schemas of the lake's own tables: a source never written reads as empty, typed frame
#: (a day with no ticks yet builds empty aggregates instead of failing).
SOURCE_SCHEMAS: Final[dict[str, pl.Schema]] = {
    "trades_history": schemas.TRADES,
    "trades": schemas.TRADES,
    "ticks_trades": schemas.TICKS_TRADES,
    "ticks_quotes": schemas.QUOTES,
    "quotes": schemas.QUOTES,
    "ticks_depth": schemas.DEPTH,
    "stream_events": schemas.STREAM_EVENTS,
    "quarantine": schemas.QUARANTINE,
}


class FrameStore(Protocol):
    """What the executor needs from `marketlake.lake.Lake` (and what a test double provides)."""

    def exists(self, table: str) -> bool: ...

    def scan(
        self, table: str, schema: pl.Schema | None = None, **partition: Any
    ) -> pl.LazyFrame: ...

    def replace_partition(
        self,
        table: str,
        frame: pl.DataFrame,
        partition: Mapping[str, Any],
        partition_by: Sequence[str],
    ) -> int: ...


def run_model(
    manifest: Manifest, name: str, lake: FrameStore, partition: Mapping[str, Any]
) -> pl.DataFrame:
    """Execute model `name` for one partition and return its rows (nothing is written).

    Raises PartitionError (before any scan or SQL) for an invalid partition, and
    ModelError naming the model's file for a SQL error or an unreadable upstream table.
    """
    model = manifest.model(name)
    bound = validate_partition(partition)
    frames = {ref: _scan_ref(manifest, model, ref, lake, bound) for ref in model.refs}
    frames[PARTITION_TABLE] = partition_frame(bound)
    try:
        return pl.SQLContext(frames).execute(model.compiled_sql, eager=False).collect()
    except (pl.exceptions.PolarsError, OSError) as exc:  # SQL errors; reads failing mid-way
        raise ModelError(model.name, model.path, f"{type(exc).__name__}: {exc}") from exc


def materialize(
    manifest: Manifest, name: str, lake: FrameStore, partition: Mapping[str, Any]
) -> pl.DataFrame:
    """Run model `name` for one partition and replace exactly that partition of its table.

    Returns the rows written, for the caller's metadata and data tests. The write is one
    Delta commit; rows outside the partition fail with ModelError before anything is written.
    """
    bound = validate_partition(partition)
    frame = model_rows(manifest, name, lake, bound)
    lake.replace_partition(name, frame, bound, manifest.model(name).config.partition_by)
    return frame


def model_rows(
    manifest: Manifest, name: str, lake: FrameStore, partition: Mapping[str, Any]
) -> pl.DataFrame:
    """The rows `materialize` would write for one partition, checked to lie inside it.

    For a caller that tests the rows before deciding to write them (the Dagster assets
    gate the commit on the model's `error` tests).
    """
    bound = validate_partition(partition)
    frame = run_model(manifest, name, lake, bound)
    _check_in_partition(manifest.model(name), frame, bound)
    return frame


def build(
    manifest: Manifest,
    lake: FrameStore,
    partition: Mapping[str, Any],
    select: Iterable[str] | None = None,
) -> dict[str, int]:
    """Materialize the selected models (all by default) in dependency order.

    Building twice leaves the same rows. Returns the rows written per model, in the
    order they were built.
    """
    bound = validate_partition(partition)
    return {
        name: materialize(manifest, name, lake, bound).height for name in manifest.select(select)
    }


def _scan_ref(
    manifest: Manifest, model: Model, ref: str, lake: FrameStore, partition: Mapping[str, Any]
) -> pl.LazyFrame:
    """A lazy scan of `ref`'s lake table, pruned to the partition keys the table has.

    A source table never written reads as empty (its schema is known); a model's table
    never written is an error, since building in dependency order always writes it first.
    """
    if ref in manifest.models:
        if not lake.exists(ref):
            raise ModelError(model.name, model.path, f"cannot read ref {ref!r}: build it first")
        return lake.scan(ref, **partition)
    schema = SOURCE_SCHEMAS.get(ref)
    keys = {k: v for k, v in partition.items() if schema is None or k in schema}
    return lake.scan(ref, schema=schema, **keys)


def _check_in_partition(model: Model, frame: pl.DataFrame, partition: Mapping[str, Any]) -> None:
    """Refuse rows without the partition columns or outside the partition, naming the model.

    The Delta replace-where would refuse them too, but with a message about predicates.
    """
    missing = [key for key in PARTITION_KEYS if key not in frame.columns]
    if missing:
        raise ModelError(model.name, model.path, f"output lacks partition column(s) {missing}")
    outside = frame.filter(
        ~pl.all_horizontal((pl.col(k) == pl.lit(v)).fill_null(False) for k, v in partition.items())
    )
    if outside.height:
        raise ModelError(
            model.name,
            model.path,
            f"{outside.height} row(s) outside partition {dict(partition)}, e.g. "
            f"{outside.select(PARTITION_KEYS).row(0, named=True)}",
        )
