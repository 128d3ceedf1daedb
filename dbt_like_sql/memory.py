"""An in-memory FrameStore: the lake's twin for unit-testing models without Delta.

It honours the same contract as `marketlake.lake.Lake` where the executor relies on it:
`scan` prunes to the partition keys given (an unknown table reads as the typed empty
frame when a schema is passed, else raises), and `replace_partition` swaps exactly the
partition's rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl


class MemoryStore:
    def __init__(self, tables: Mapping[str, pl.DataFrame] | None = None) -> None:
        self.tables: dict[str, pl.DataFrame] = dict(tables or {})

    def exists(self, table: str) -> bool:
        return table in self.tables

    def scan(self, table: str, schema: pl.Schema | None = None, **partition: Any) -> pl.LazyFrame:
        if table not in self.tables:
            if schema is None:
                raise KeyError(f"table {table!r} not found")
            return pl.LazyFrame(schema=schema)
        return self.tables[table].lazy().filter(_selects(partition))

    def replace_partition(
        self,
        table: str,
        frame: pl.DataFrame,
        partition: Mapping[str, Any],
        partition_by: Sequence[str],
    ) -> int:
        kept = self.tables.get(table, frame.clear()).filter(~_selects(partition))
        self.tables[table] = pl.concat([kept, frame], how="vertical")
        return 0


def _selects(partition: Mapping[str, Any]) -> pl.Expr:
    return pl.all_horizontal(
        pl.lit(True), *((pl.col(k) == pl.lit(v)).fill_null(False) for k, v in partition.items())
    )
