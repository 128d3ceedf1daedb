"""A Binance archive day downloaded ahead of the run that loads it, and taken by that run once.

`marketlake backfill` spends its first seconds importing Dagster and opening the instance
before its run asks for the first day. The day's download, checksum, inflate and CSV parse
mostly run outside the GIL (sockets, isal, Polars), so the command starts that download in
a thread as soon as the request is accepted (`archive_day_prefetched`), and the run's
`fetch_partition` takes the finished day (`take_prefetched`) instead of downloading it again.

Nothing stale or unverified is ever used: a prefetched day is `BinanceArchive.fetch_day`'s
own result (checksum-verified), keyed by the archive's URL, the symbol and the date, taken at
most once, and dropped when the command's block ends, taken or not. A prefetch that failed
is simply not there: the run fetches the day itself, as it would have anyway.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass

from marketlake.exchanges.binance.archive import ArchiveDay, BinanceArchive
from marketlake.schemas import normalize_symbol

_Key = tuple[str, str, dt.date]


@dataclass(frozen=True)
class Prefetched:
    """A downloaded day and the seconds its download took (the run reports them as its own:
    the work was done for it, only earlier)."""

    day: ArchiveDay
    seconds: float


_prefetched: dict[_Key, Future[Prefetched]] = {}
_lock = threading.Lock()


def _key(archive_url: str, symbol: str, date: dt.date) -> _Key:
    return archive_url.rstrip("/"), normalize_symbol(symbol), date


@contextmanager
def archive_day_prefetched(
    archive_url: str, symbol: str, date: dt.date
) -> Iterator[Future[Prefetched]]:
    """Download `symbol`'s `date` from the archive at `archive_url` in a thread, for a run
    started inside this block to take; an untaken day is dropped when the block ends.

    Yields the download's future, to watch it (a test waits for it); taking the day is
    `take_prefetched`'s alone."""
    key = _key(archive_url, symbol, date)
    future: Future[Prefetched] = Future()
    future.set_running_or_notify_cancel()
    with _lock:
        _prefetched[key] = future

    def download() -> None:
        try:
            started = time.perf_counter()
            with BinanceArchive(archive_url) as archive:
                day = archive.fetch_day(symbol, date)
            future.set_result(Prefetched(day, time.perf_counter() - started))
        except BaseException as error:  # the run's own fetch will meet it, or not
            future.set_exception(error)

    # A daemon thread: a command refused meanwhile exits without waiting for the download.
    threading.Thread(target=download, name=f"prefetch {symbol} {date}", daemon=True).start()
    try:
        yield future
    finally:
        with _lock:
            if _prefetched.get(key) is future:
                del _prefetched[key]


def take_prefetched(archive: BinanceArchive, symbol: str, date: dt.date) -> Prefetched | None:
    """The day prefetched from `archive`'s URL, once it has arrived; None when there is
    none (or it failed): the caller fetches the day itself."""
    with _lock:
        future = _prefetched.pop(_key(archive.base_url, symbol, date), None)
    if future is None:
        return None
    try:
        return future.result()
    except Exception:
        return None
