"""`marketlake vacuum`: delete the files no table version needs, orphans included.

A writer killed mid-write (kill -9, a lost machine) can leave parquet files that no Delta
commit names: readers never see them (a table is what its log says), but they take space.
A full vacuum lists every file of each table and deletes those the log does not reference,
once they are older than the retention (so a concurrent writer's files, not committed yet,
are never taken). `vacuum_schedule` covers the compacted live tables daily; this command
covers every table, on demand.
"""

from __future__ import annotations

from dataclasses import dataclass

from marketlake.lake import Lake

#: The tables marketlake writes besides the SQL models (whose names come from the manifest).
CORE_TABLES = (
    "trades_history",
    "ticks_trades",
    "ticks_quotes",
    "ticks_depth",
    "quarantine",
    "stream_events",
    "trades",
    "quotes",
)

#: Delta's own default: a week, far longer than any write takes.
DEFAULT_RETENTION_HOURS = 168


@dataclass(frozen=True)
class Vacuumed:
    table: str
    files: list[str]


def lake_tables() -> list[str]:
    import dbt_like_sql as dls

    return [*CORE_TABLES, *dls.load_manifest().order]


def vacuum_lake(lake: Lake, *, retention_hours: int, dry_run: bool) -> list[Vacuumed]:
    """Vacuum every existing table of `lake`; with `dry_run`, only list what would go."""
    done = []
    for table in lake_tables():
        if not lake.exists(table):
            continue
        files = lake.delta_table(table).vacuum(
            retention_hours=retention_hours,
            dry_run=dry_run,
            enforce_retention_duration=False,
            full=True,
        )
        done.append(Vacuumed(table, sorted(files)))
    return done
