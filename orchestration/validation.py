"""What a backfill or build request must satisfy before anything is fetched or written."""

from __future__ import annotations

import datetime as dt

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
