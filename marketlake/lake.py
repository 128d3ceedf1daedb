"""The Delta store: one folder per table under a lake root, on local disk or `s3://`.

Every write is one Delta commit, so a reader sees all of it or none of it, and a write that
fails (bad data, a crash mid-way) leaves the table at its previous version. Partition
replacement uses Delta's replace-where (`predicate`), which also refuses rows that fall
outside the partition being replaced, so one partition's write can never touch another.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, TypeVar, overload
from urllib.parse import unquote

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError

PartitionValues = Mapping[str, str | dt.date]
_T = TypeVar("_T")
log = logging.getLogger(__name__)


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


#: Where `Lake()` looks when no root is given, and its fallback.
LAKE_ENV: Final = "MARKETLAKE_LAKE"
DEFAULT_LAKE: Final = "./lake"


@dataclass(frozen=True)
class Lake:
    """A lake root (`./lake`, `/data/lake` or `s3://bucket/prefix`) and how to reach it.

    Constructing a Lake touches nothing; the first read or write does. With no root it is
    `$MARKETLAKE_LAKE` or `./lake`, as everywhere else in marketlake; an `s3://` root given
    without storage options takes them from the environment (`s3_storage_options`), so an
    analyst's `Lake("s3://bucket/prefix")` reaches the same store the platform writes.
    """

    uri: str | None = None
    storage_options: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        uri = self.uri if self.uri is not None else os.environ.get(LAKE_ENV) or DEFAULT_LAKE
        if "://" not in uri:
            uri = str(Path(uri).expanduser().absolute())
        object.__setattr__(self, "uri", uri)
        if self.storage_options is None:
            options = s3_storage_options(os.environ) if uri.startswith("s3://") else {}
            object.__setattr__(self, "storage_options", options)

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
        A replacement is blind: its rows come from sources, never from the rows it replaces,
        so one that another writer's replacement of the same partition overtook is tried
        again and lands last, as a later materialization would.
        """
        return self._write(
            table,
            frame,
            partitions=[partition],
            mode="overwrite",
            predicate=partition_predicate(partition),
            partition_by=list(partition_by),
        )

    def replace_partitions(
        self,
        table: str,
        frame: pl.DataFrame,
        partitions: Sequence[PartitionValues],
        partition_by: Sequence[str],
    ) -> int:
        """Atomically replace exactly `partitions` of `table` with `frame` in one commit.

        All of them or none: a reader sees every partition's old rows or every new one.
        A partition with no rows in `frame` is emptied, as `replace_partition` does.
        """
        if not partitions:
            raise ValueError("replace_partitions needs at least one partition")
        if len(partitions) == 1:
            return self.replace_partition(table, frame, partitions[0], partition_by)
        predicate = " OR ".join(f"({partition_predicate(p)})" for p in partitions)
        return self._write(
            table,
            frame,
            partitions=partitions,
            mode="overwrite",
            predicate=predicate,
            partition_by=list(partition_by),
        )

    def append(self, table: str, frame: pl.DataFrame, partition_by: Sequence[str]) -> int:
        """Append `frame` to `table` in one commit (creating the table on first use)."""
        return self._write(table, frame, mode="append", partition_by=list(partition_by))

    def _write(
        self,
        table: str,
        frame: pl.DataFrame,
        partitions: Sequence[PartitionValues] = (),
        **options: Any,
    ) -> int:
        """One commit; returns *its* version, even when other writers commit meanwhile."""
        self._ensure_parent()
        return _retrying_safe_conflicts(
            lambda: self._commit(table, frame, partitions, **options), table
        )

    def _commit(
        self,
        table: str,
        frame: pl.DataFrame,
        partitions: Sequence[PartitionValues],
        **options: Any,
    ) -> int:
        """Writing through a loaded `DeltaTable` leaves it at the version this commit got
        (deltalake retries a commit that lost the race at the next free version); reading
        the table's version afterwards could report another writer's later commit.

        A replacement of `partitions` refused because a concurrent commit added files is
        safe to try again (`_ConcurrentReplacement`), whether that commit left their files as
        read (deltalake cannot tell a replacement of more than 20 symbols of one date from
        other symbols' writes) or replaced them too (the later commit wins).
        """
        try:
            target = self.delta_table(table)
        except TableNotFoundError:  # the first write creates the table
            write_deltalake(
                self.table_uri(table),
                _record_batches(frame),
                storage_options=self._options(),
                **options,
            )
            return self.version(table)
        try:
            write_deltalake(target, _record_batches(frame), **options)
        except CommitFailedError as error:
            if not partitions or _CONCURRENT_ADD not in str(error):
                raise
            now = self.delta_table(table)
            raise _ConcurrentReplacement(
                same_partitions=_files_of(now, partitions) != _files_of(target, partitions)
            ) from error
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

    def partition_values(self, table: str, columns: Sequence[str]) -> frozenset[tuple[str, ...]]:
        """The distinct values of some partition columns at the table's latest version.

        Answered from the same per-version index as `read_partition` (dates as ISO text),
        so asking which symbols or exchanges a table holds costs no Delta log replay.
        """
        return self._index(table, plain_only=False).distinct(tuple(columns))

    def read_partitions(
        self,
        table: str,
        partitions: Iterable[Mapping[str, str | dt.date]],
        *,
        refresh: bool = True,
        sort_by: str | None = None,
    ) -> pl.LazyFrame:
        """Lazily read several whole partitions (each with every partition column), in order.

        The multi-partition form of `read_partition`: one index check for all of them, then
        one Parquet scan per partition that has files; partitions without any are skipped.
        `refresh=False` skips the check for new commits when the caller has just made it
        (by `partition_values`), so one question costs one listing of `_delta_log`.
        `sort_by` sorts each partition's rows by that column (partitions stay in order).
        """
        wanted = list(partitions)
        index = self._index(table, refresh=refresh)
        if index is None:
            if not wanted:
                return self.scan(table).filter(pl.lit(False))
            return pl.concat(
                [_sorted(self.scan(table).filter(partition_filter(p)), sort_by) for p in wanted],
                how="vertical",
            )
        frames = []
        for partition in wanted:
            if set(partition) != set(index.partition_columns):
                raise ValueError(
                    f"reading {table!r} by partition needs exactly the partition columns "
                    f"{', '.join(index.partition_columns)}; got {', '.join(partition) or 'none'}"
                )
            key = tuple(_filter_value(partition[c]) for c in index.partition_columns)
            files = index.files.get(key)
            if files:
                keys = {
                    c: pl.lit(partition[c]).cast(index.schema[c]) for c in index.partition_columns
                }
                scan = (
                    pl.scan_parquet(files, storage_options=self._options())
                    .with_columns(**keys)
                    .select(index.schema.names())
                )
                frames.append(_sorted(scan, sort_by))
        if not frames:
            return pl.LazyFrame(schema=index.schema)
        return frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical")

    def read_partition(self, table: str, **partition: str | dt.date) -> pl.LazyFrame:
        """Lazily read exactly one partition (every partition column given), fast when warm.

        For readers that ask again and again (a chart, an API): the table's file list is
        indexed by partition once per table version, so a read costs a check for new
        commits (one listing of `_delta_log`) and the scan of the partition's own files,
        instead of replaying the Delta log on every call as `pl.scan_delta` does (~100 ms
        for a year of 50 symbols). Rows and column order are those of `scan`; tables using
        deletion vectors or column mapping (which a bare Parquet scan would misread) are
        read through `scan`.
        """
        index = self._index(table)
        if index is None:
            return self.scan(table, **partition)
        if set(partition) != set(index.partition_columns):
            raise ValueError(
                f"read_partition({table!r}) needs exactly the partition columns "
                f"{', '.join(index.partition_columns)}; got {', '.join(partition) or 'none'}"
            )
        return self.read_partitions(table, [partition], refresh=False)  # just refreshed

    @overload
    def _index(self, table: str, *, refresh: bool = True) -> _PartitionIndex | None: ...

    @overload
    def _index(
        self, table: str, plain_only: Literal[False], *, refresh: bool = True
    ) -> _PartitionIndex: ...

    def _index(
        self, table: str, plain_only: bool = True, *, refresh: bool = True
    ) -> _PartitionIndex | None:
        """The table's partition -> files index at its latest version.

        None when `plain_only` and the files cannot be read as bare Parquet (the partition
        values it lists are right either way). `refresh=False` reuses an index that was
        loaded before without checking for new commits.
        """
        key = (self.table_uri(table), tuple(sorted(self.storage_options.items())))
        with _INDEXES_LOCK:
            index = _INDEXES.get(key)
            if index is None:
                index = _INDEXES[key] = _PartitionIndex(self.delta_table(table))
                index.refresh()
            elif refresh or index.version < 0:
                index.refresh()
            return index if index.plain or not plain_only else None

    def compact_partition(self, table: str, partition: PartitionValues) -> dict[str, Any]:
        """Bin-pack one partition's small files into large ones (one commit; rows unchanged).

        The commit removes only the files it rewrote, so writers appending to the same
        table meanwhile keep working: Delta's conflict check lets a compaction and a blind
        append both land.
        """
        filters = [(column, "=", _filter_value(v)) for column, v in partition.items()]
        return _retrying_safe_conflicts(
            lambda: self.delta_table(table).optimize.compact(partition_filters=filters), table
        )

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


#: Rows per record batch handed to the Delta writer. It splits, encodes and buffers batch by
#: batch, so a 5M-row day in one piece would cost it ~1 GiB at once; slices keep that flat.
WRITE_BATCH_ROWS = 1 << 19


#: How many times a write is tried while safe conflicts (below) keep refusing it: each losing
#: attempt sees one more writer's commit, and a run queue holds a handful of writers.
COMMIT_ATTEMPTS: Final = 8

#: deltalake's words for a refused commit whose conflict is a concurrent change of the
#: table's schema or protocol. Only a table's creation commits those here: writers that
#: find no table all create it, and the creations after the first land as later versions
#: that still carry a schema and a protocol, refusing every commit begun before them.
_CREATION_CONFLICTS: Final = (
    "Metadata changed since last commit",
    "Protocol changed since last commit",
)


#: deltalake's words for a commit refused because a concurrent one added files that its
#: predicate may match. It decides that by pruning the files on the predicate, which gives
#: up on an `IN` list of more than 20 values: a replacement of 21 symbols of one date is
#: refused for any file a concurrent writer adds, whatever its partition.
_CONCURRENT_ADD: Final = "concurrent transaction"


class _ConcurrentReplacement(Exception):
    """A replacement refused for a concurrent commit that added files it may replace.

    Trying again is safe because replacements are blind: if the other commit left these
    partitions' files as read, the rows replaced are the rows read; if it replaced them
    too, its rows came from sources as well and the later commit wins. Either way nothing
    the other writer committed elsewhere is touched.
    """

    def __init__(self, same_partitions: bool) -> None:
        super().__init__()
        self.reason = (
            "another writer's replacement of the same partitions (the later commit wins)"
            if same_partitions
            else "a concurrent commit to other partitions"
        )


def _retrying_safe_conflicts(commit: Callable[[], _T], table: str) -> _T:
    """`commit()` to `table`, tried again on the table as it now is while it is refused for
    a conflict that trying again resolves safely; any other refusal is raised.

    Those conflicts are a concurrent writer's creation of the table, and a replacement
    overtaken by a concurrent commit (`_ConcurrentReplacement`). Retrying is
    safe: each try re-reads the table (so a real schema change would fail it with a schema
    error), and a refused commit leaves the table as it was (its data files are never
    listed; `vacuum` removes them). deltalake names a conflict only in its message, hence
    the text match. Each retry is logged: it re-writes the batch's files, which is the
    cost a run's log should explain.
    """
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        try:
            return commit()
        except _ConcurrentReplacement as conflict:
            if attempt == COMMIT_ATTEMPTS:
                raise conflict.__cause__ from None  # type: ignore[misc]
            reason = conflict.reason
        except CommitFailedError as error:
            lost_to_creation = any(words in str(error) for words in _CREATION_CONFLICTS)
            if attempt == COMMIT_ATTEMPTS or not lost_to_creation:
                raise
            reason = "a concurrent creation of the table"
        log.warning(
            "commit to %s refused for %s; trying again (attempt %d of %d)",
            table,
            reason,
            attempt + 1,
            COMMIT_ATTEMPTS,
        )
    raise AssertionError("unreachable: the last attempt returns or raises")


def _files_of(table: DeltaTable, partitions: Sequence[PartitionValues]) -> frozenset[str]:
    """The data files of `partitions` at the version `table` is loaded at."""
    columns = list(partitions[0])
    wanted = pl.DataFrame(
        {c: [_filter_value(p[c]) for p in partitions] for c in columns},
        schema=dict.fromkeys(columns, pl.String),
    )
    actions = pl.DataFrame(table.get_add_actions(flatten=True)).select(
        "path", *(pl.col(f"partition.{c}").cast(pl.String).alias(c) for c in columns)
    )
    return frozenset(actions.join(wanted, on=columns, how="semi")["path"])


def _record_batches(frame: pl.DataFrame) -> pa.RecordBatchReader:
    """`frame` as a stream of Arrow batches of at most WRITE_BATCH_ROWS rows (no copy)."""
    schema = frame.head(0).to_arrow().schema
    batches = (
        batch
        for part in frame.iter_slices(WRITE_BATCH_ROWS)
        for batch in part.to_arrow().to_batches()
    )
    return pa.RecordBatchReader.from_batches(schema, batches)


#: The indexes `read_partition` keeps, per table URI and storage options, for the process:
#: a Lake stays a plain value (copied, compared, pickled like one).
_INDEXES: dict[tuple[str, tuple[tuple[str, str], ...]], _PartitionIndex] = {}
_INDEXES_LOCK = threading.Lock()


class _PartitionIndex:
    """A loaded DeltaTable and its data files grouped by partition values, per version."""

    #: Reader features a bare Parquet scan of the data files would get wrong.
    UNSAFE_FEATURES = frozenset({"deletionVectors", "columnMapping"})

    def __init__(self, table: DeltaTable) -> None:
        self.table = table
        self.version = -1
        self.plain = False
        self.partition_columns: list[str] = []
        self.schema = pl.Schema()
        self.files: dict[tuple[str, ...], list[str]] = {}
        self._distinct: dict[tuple[str, ...], frozenset[tuple[str, ...]]] = {}

    def refresh(self) -> None:
        self.table.update_incremental()
        version = self.table.version()
        if version == self.version:
            return
        protocol = self.table.protocol()
        self.plain = protocol.min_reader_version == 1 or (
            protocol.min_reader_version == 3
            and not self.UNSAFE_FEATURES & set(protocol.reader_features or ())
        )
        self.partition_columns = list(self.table.metadata().partition_columns)
        self.schema = pl.scan_delta(self.table).collect_schema()
        actions = pl.DataFrame(self.table.get_add_actions(flatten=True))
        root = self.table.table_uri.rstrip("/")
        keys = [pl.col(f"partition.{c}").cast(pl.String) for c in self.partition_columns]
        grouped = actions.group_by(keys).agg(pl.col("path"))
        self.files = {
            tuple(row[:-1]): [f"{root}/{unquote(path)}" for path in row[-1]]
            for row in grouped.iter_rows()
        }
        self._distinct = {}
        self.version = version

    def distinct(self, columns: tuple[str, ...]) -> frozenset[tuple[str, ...]]:
        """Distinct values of `columns` (partition columns) over the indexed files."""
        found = self._distinct.get(columns)
        if found is None:
            unknown = [c for c in columns if c not in self.partition_columns]
            if unknown:
                raise ValueError(
                    f"not partition columns: {', '.join(unknown)} "
                    f"(the table is partitioned by {', '.join(self.partition_columns)})"
                )
            positions = [self.partition_columns.index(c) for c in columns]
            found = frozenset(tuple(key[i] for i in positions) for key in self.files)
            self._distinct[columns] = found
        return found


def _sorted(frame: pl.LazyFrame, column: str | None) -> pl.LazyFrame:
    return frame if column is None else frame.sort(column)


def _filter_value(value: str | dt.date) -> str:
    return value.isoformat() if isinstance(value, dt.date) else value


def s3_storage_options(env: Mapping[str, str]) -> dict[str, str]:
    """deltalake object-store options for an S3 (or S3-compatible, on loopback) lake.

    Concurrent writers: a Delta commit is the creation of `_delta_log/<version>.json`, and it
    is safe only if creating an object that already exists fails. deltalake 1.x does that
    with a conditional put (`If-None-Match: *`; a loser gets 412, re-reads the log and
    retries at the next version). It needs no locking provider and never
    `AWS_S3_ALLOW_UNSAFE_RENAME` (which lets two writers overwrite each other's commit).
    AWS S3 (since 2024-11) and SeaweedFS (tests/s3 checks it, racing writers included)
    honour it. `etag` is object_store's default today; it is spelled out so that neither an
    `AWS_CONDITIONAL_PUT` in the environment nor a changed default can switch it off. An
    S3-compatible store that *ignores* `If-None-Match` would let commits overwrite each
    other: check a new store before pointing concurrent writers at it.
    """
    region = env.get("MARKETLAKE_S3_REGION", "").strip() or "us-east-1"
    options = {"AWS_REGION": region, "AWS_CONDITIONAL_PUT": "etag"}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        if env.get(name):
            options[name] = env[name]
    endpoint = env.get("MARKETLAKE_S3_ENDPOINT", "").strip()
    if endpoint:
        options["AWS_ENDPOINT_URL"] = endpoint
        if endpoint.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    return options
