"""The Delta store: one folder per table under a lake root, on local disk or `s3://`.

Every write is one Delta commit, so a reader sees all of it or none of it, and a write that
fails (bad data, a crash mid-way) leaves the table at its previous version. Partition
replacement uses Delta's replace-where (`predicate`), which also refuses rows that fall
outside the partition being replaced, so one partition's write can never touch another.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

PartitionValues = Mapping[str, str | dt.date]


def _sql_literal(value: str | dt.date) -> str:
    if isinstance(value, dt.date):
        return f"'{value.isoformat()}'"
    if not isinstance(value, str):
        raise TypeError(f"partition values must be str or date, got {type(value).__name__}")
    return "'" + value.replace("'", "''") + "'"


def partition_predicate(partition: PartitionValues) -> str:
    """The SQL predicate selecting exactly one partition, e.g. `symbol = 'BTCUSDT' AND ...`."""
    if not partition:
        raise ValueError("a partition needs at least one column")
    return " AND ".join(f"{column} = {_sql_literal(v)}" for column, v in partition.items())


def partition_filter(partition: PartitionValues) -> pl.Expr:
    """The same selection as a Polars expression, for pruned scans."""
    return pl.all_horizontal(pl.col(column) == pl.lit(v) for column, v in partition.items())


@dataclass(frozen=True)
class Lake:
    """A lake root (`./lake`, `/data/lake` or `s3://bucket/prefix`) and how to reach it.

    Constructing a Lake touches nothing; the first read or write does.
    """

    uri: str
    storage_options: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if "://" not in self.uri:
            object.__setattr__(self, "uri", str(Path(self.uri).expanduser().absolute()))

    @property
    def is_local(self) -> bool:
        return "://" not in self.uri or self.uri.startswith("file://")

    def table_uri(self, table: str) -> str:
        if not table.isidentifier():
            raise ValueError(f"invalid table name {table!r}")
        return f"{self.uri.rstrip('/')}/{table}"

    def _options(self) -> dict[str, str] | None:
        return dict(self.storage_options) or None

    # --- writes ----------------------------------------------------------------------------

    def replace_partition(
        self,
        table: str,
        frame: pl.DataFrame,
        partition: PartitionValues,
        partition_by: Sequence[str],
    ) -> int:
        """Atomically replace exactly `partition` of `table` with `frame`; return the version.

        An empty frame deletes the partition's rows (the source has none for it). Rows of
        `frame` outside `partition` make the commit fail and leave the table untouched.
        """
        return self._write(
            table,
            frame,
            mode="overwrite",
            predicate=partition_predicate(partition),
            partition_by=list(partition_by),
        )

    def append(self, table: str, frame: pl.DataFrame, partition_by: Sequence[str]) -> int:
        """Append `frame` to `table` in one commit (creating the table on first use)."""
        return self._write(table, frame, mode="append", partition_by=list(partition_by))

    def _write(self, table: str, frame: pl.DataFrame, **options: Any) -> int:
        """One commit; returns *its* version, even when other writers commit meanwhile.

        Writing through a loaded `DeltaTable` leaves it at the version this commit got
        (deltalake retries a commit that lost the race at the next free version); reading
        the table's version afterwards could report another writer's later commit.
        """
        self._ensure_parent()
        try:
            target = self.delta_table(table)
        except TableNotFoundError:  # the first write creates the table
            write_deltalake(
                self.table_uri(table), frame.to_arrow(), storage_options=self._options(), **options
            )
            return self.version(table)
        write_deltalake(target, frame.to_arrow(), **options)
        return target.version()

    def _ensure_parent(self) -> None:
        if self.is_local:
            os.makedirs(self.uri.removeprefix("file://"), exist_ok=True)

    # --- reads -----------------------------------------------------------------------------

    def exists(self, table: str) -> bool:
        return DeltaTable.is_deltatable(self.table_uri(table), storage_options=self._options())

    def delta_table(self, table: str) -> DeltaTable:
        return DeltaTable(self.table_uri(table), storage_options=self._options())

    def version(self, table: str) -> int:
        return self.delta_table(table).version()

    def scan(self, table: str, schema: pl.Schema | None = None, **partition: Any) -> pl.LazyFrame:
        """Lazily read `table`, pruned to the partition columns given as keywords.

        A table that was never written reads as empty with `schema` (when given), so the
        first run of a downstream job sees "no rows", not an error.
        """
        if schema is not None and not self.exists(table):
            return pl.LazyFrame(schema=schema)
        lazy = pl.scan_delta(self.table_uri(table), storage_options=self._options())
        if partition:
            lazy = lazy.filter(partition_filter(partition))
        return lazy

    def compact_partition(self, table: str, partition: PartitionValues) -> dict[str, Any]:
        """Bin-pack one partition's small files into large ones (one commit; rows unchanged).

        The commit removes only the files it rewrote, so writers appending to the same
        table meanwhile keep working: Delta's conflict check lets a compaction and a blind
        append both land.
        """
        filters = [(column, "=", _filter_value(v)) for column, v in partition.items()]
        return self.delta_table(table).optimize.compact(partition_filters=filters)

    def vacuum(self, table: str, retention_hours: int) -> list[str]:
        """Delete files no version younger than `retention_hours` needs; returns them."""
        return self.delta_table(table).vacuum(
            retention_hours=retention_hours, enforce_retention_duration=False, dry_run=False
        )

    def partition_files(self, table: str, partition: PartitionValues) -> list[str]:
        """The data files currently holding `partition` (what compaction reduces)."""
        return self.delta_table(table).file_uris(
            file_pruning_predicate=partition_predicate(partition)
        )


def _filter_value(value: str | dt.date) -> str:
    return value.isoformat() if isinstance(value, dt.date) else value
