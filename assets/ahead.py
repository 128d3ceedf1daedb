"""Work started ahead of the run that needs it, and taken by that run once.

A CLI command spends its first seconds importing Dagster and opening the instance before
its run asks for the first instrument-day. The first day's own work (a download and parse,
a merge of the day's tables) mostly runs outside the interpreter's lock (sockets, isal,
Polars), so the command starts it in a thread as soon as the request is accepted, and the
run takes the result instead of doing the work again (`assets.archive_prefetch` for a
backfill, `assets.merged_days` for a build).

A result is taken at most once, under the key it was started with, and dropped when the
command's block ends, taken or not. Work that failed is simply not there: the run does it
itself, as it would have anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class Ahead(Generic[T]):
    """Results of work started ahead, by key."""

    def __init__(self) -> None:
        self._futures: dict[Hashable, Future[T]] = {}
        self._lock = threading.Lock()

    @contextmanager
    def started(self, key: Hashable, work: Callable[[], T], name: str) -> Iterator[Future[T]]:
        """Run `work` in a thread, for a run started inside this block to `take` under
        `key`; an untaken result is dropped when the block ends.

        Yields the work's future, to watch it (a test waits for it); taking the result is
        `take`'s alone."""
        future: Future[T] = Future()
        future.set_running_or_notify_cancel()
        with self._lock:
            self._futures[key] = future

        def run() -> None:
            try:
                future.set_result(work())
            except BaseException as error:  # the run's own attempt will meet it, or not
                future.set_exception(error)

        # A daemon thread: a command refused meanwhile exits without waiting for the work.
        threading.Thread(target=run, name=name, daemon=True).start()
        try:
            yield future
        finally:
            with self._lock:
                if self._futures.get(key) is future:
                    del self._futures[key]

    def take(self, key: Hashable) -> T | None:
        """The result started under `key`, once it is done; None when there is none (or the
        work failed): the caller does the work itself."""
        with self._lock:
            future = self._futures.pop(key, None)
        if future is None:
            return None
        try:
            return future.result()
        except Exception:
            return None
