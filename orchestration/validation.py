"""What a backfill or build request must satisfy before anything is fetched or written.

None of it imports Dagster: the CLI checks a request, and starts its first download, while
Dagster is still to load.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path

from marketlake.exchanges.registry import venue
from marketlake.instruments import Instrument
from marketlake.lake import Lake
from orchestration.errors import UsageError
from orchestration.settings import Settings


def validate_range(
    settings: Settings, start: dt.date, end: dt.date, *, allow_today: bool = False
) -> None:
    today = dt.datetime.now(dt.UTC).date()
    if end < start:
        raise UsageError(f"--end {end} is before --start {start}")
    if start < settings.start_date:
        raise UsageError(
            f"--start {start} is before the first partition day {settings.start_date} "
            "(set MARKETLAKE_START_DATE to go further back)"
        )
    if end > today or (end == today and not allow_today):
        raise UsageError(f"{end} is not a complete UTC day yet (today is {today})")


#: More partitions than this in one command need `--yes`: at ~1 s each that is over an hour
#: of runs, and every partition is a Delta commit and a Dagster run in the instance.
MAX_PARTITIONS_WITHOUT_CONFIRMATION = 400


def check_size(partitions: int, *, confirmed: bool) -> None:
    """Refuse a range past `MAX_PARTITIONS_WITHOUT_CONFIRMATION` unless `--yes` confirms it."""
    if partitions > MAX_PARTITIONS_WITHOUT_CONFIRMATION and not confirmed:
        raise UsageError(
            f"{partitions:,} partitions (symbols x days) is more than "
            f"{MAX_PARTITIONS_WITHOUT_CONFIRMATION} in one command: check --start/--end, "
            "or add --yes to run them all"
        )


def check_lake(lake: Lake) -> None:
    """A local lake must be a folder this process can write, or be creatable as one.

    Checked before anything is downloaded: otherwise the first write fails after the
    download, once per partition. Object stores (s3://) are reached on the first write.
    """
    if not lake.is_local:
        return
    path = Path(lake.uri.removeprefix("file://"))
    if path.exists() and not path.is_dir():
        raise UsageError(f"--lake {path} is a file, not a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"--lake {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--lake {path}: folder {existing} is not writable")


def check_history(instruments: Sequence[Instrument], source: str) -> None:
    """Refuse instruments whose venue serves no history, or not from `source`, before
    anything runs: Coinbase's days come from the stream alone, OKX and Deribit have no
    archive (`marketlake.exchanges.registry.Venue.history`)."""
    streamed_only = [str(i) for i in instruments if not venue(i.venue).history]
    if streamed_only:
        raise UsageError(
            f"no historic trades to backfill for {', '.join(streamed_only)}: the venue serves "
            "no trade history; its days are built from their streamed ticks "
            "(`marketlake stream`, then `marketlake build`)"
        )
    if source != "auto":
        for name in sorted({i.venue for i in instruments}):
            chosen = venue(name)
            if source not in chosen.history:
                raise UsageError(
                    f"--source {source}: {chosen.title} has no {source} of trades; its days "
                    f"come from {chosen.history_detail} (--source "
                    f"{' or '.join(chosen.history)}, or auto)"
                )
