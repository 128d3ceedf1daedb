"""Writers that race on one table, as a run queue's runs do: together on a table nobody has
created yet, or one committing after another has read."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable

from marketlake import schemas
from marketlake.lake import Lake
from support.frames import partition, trades

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")
KEYS = schemas.MARKET_PARTITION_COLUMNS


def race_first_writes(lake: Lake, table: str, commits_each: int) -> None:
    """Each of four threads replaces its own symbol's partition `commits_each` times, all
    starting at once on a missing `table`: several find no table and create it, and every
    commit begun before the last creation meets a changed schema and protocol."""

    def replace(writer: int) -> None:
        symbol = SYMBOLS[writer]
        for commit in range(commits_each):
            ids = range(100 * commit, 100 * commit + 10 * (writer + 1))
            lake.replace_partition(table, trades(symbol, ids), partition(symbol), KEYS)

    _together(replace, range(len(SYMBOLS)))


def race_wide_replacements(lake: Lake, table: str, commits_each: int) -> None:
    """Two writers replacing disjoint symbols of one date at once, 25 and 20 of them, as two
    runs of a fleet's backfill do (its runs are a date's symbols, 30 at most)."""
    symbols = [f"S{i:03d}USDT" for i in range(45)]
    everything = pl.concat([trades(s, range(1)) for s in symbols])
    lake.replace_partitions(table, everything, [partition(s) for s in symbols], KEYS)

    def replace(group: list[str]) -> None:
        for commit in range(commits_each):
            frame = pl.concat([trades(s, range(commit + 2)) for s in group])
            lake.replace_partitions(table, frame, [partition(s) for s in group], KEYS)

    _together(replace, [symbols[:25], symbols[25:]])


def _together(write: Callable[[Any], None], writers: Sequence[Any]) -> None:
    """`write(w)` for every writer on its own thread, all released at once; raises the
    first writer's error."""
    start = threading.Barrier(len(writers))

    def released(writer: Any) -> None:
        start.wait()
        write(writer)

    with ThreadPoolExecutor(len(writers)) as pool:
        list(pool.map(released, writers))


def one_date_of(count: int, root: Path) -> tuple[Lake, list[str], list[dict[str, Any]]]:
    """A lake at `root` whose table `t` holds one row of each of `count` symbols of one date."""
    lake = Lake(str(root))
    symbols = [f"S{i:03d}USDT" for i in range(count)]
    partitions = [partition(s) for s in symbols]
    lake.replace_partitions(
        "t", pl.concat([trades(s, range(1)) for s in symbols]), partitions, KEYS
    )
    return lake, symbols, partitions


def next_read_is(stale: DeltaTable, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lake's next table read returns `stale`: a writer that read the table before
    another writer's commit."""
    reads = iter([stale])
    loaded = Lake.delta_table
    monkeypatch.setattr(Lake, "delta_table", lambda self, t: next(reads, None) or loaded(self, t))
