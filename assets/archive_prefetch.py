"""A Binance archive day downloaded ahead of the run that loads it (`assets.ahead`).

`marketlake backfill` starts the first day's download, checksum, inflate and CSV parse as
soon as the request is accepted (`archive_day_prefetched`), and the run's fetch takes the
finished day (`take_prefetched`) instead of downloading it again.

Nothing stale or unverified is ever used: a prefetched day is `BinanceArchive.fetch_day`'s
own result (checksum-verified), keyed by the archive's URL, the symbol and the date.
"""

from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass

from assets.ahead import Ahead
from marketlake.exchanges.binance.archive import ArchiveDay, BinanceArchive
from marketlake.schemas import normalize_symbol


@dataclass(frozen=True)
class Prefetched:
    """A downloaded day and the seconds its download took (the run reports them as its own:
    the work was done for it, only earlier)."""

    day: ArchiveDay
    seconds: float


_days: Ahead[Prefetched] = Ahead()


def _key(archive_url: str, symbol: str, date: dt.date) -> tuple[str, str, dt.date]:
    return archive_url.rstrip("/"), normalize_symbol(symbol), date


def archive_day_prefetched(
    archive_url: str, symbol: str, date: dt.date
) -> AbstractContextManager[Future[Prefetched]]:
    """Download `symbol`'s `date` from the archive at `archive_url` in a thread, for a run
    started inside this block to take (`take_prefetched`)."""

    def download() -> Prefetched:
        started = time.perf_counter()
        with BinanceArchive(archive_url) as archive:
            day = archive.fetch_day(symbol, date)
        return Prefetched(day, time.perf_counter() - started)

    return _days.started(_key(archive_url, symbol, date), download, f"prefetch {symbol} {date}")


def take_prefetched(archive: BinanceArchive, symbol: str, date: dt.date) -> Prefetched | None:
    """The day prefetched from `archive`'s URL, once it has arrived; None when there is
    none (or it failed): the caller fetches the day itself."""
    return _days.take(_key(archive.base_url, symbol, date))
