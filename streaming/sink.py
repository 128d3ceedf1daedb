"""The Delta sink: one writer thread, flushes in order, nothing dropped.

Delta commits block for tens of milliseconds (more on S3), so they never run on the event
loop: the loop hands a `Taken` (the swapped-out column lists) to this thread, which builds
the frames, appends one commit per table and then writes the checkpoint. Flushes are
written strictly in order by a single thread, so the checkpoint never claims a later flush
before an earlier one has landed.

A failing write is retried with capped backoff, forever while running; the batch stays at
the head of the queue (later flushes queue behind it, in memory) and the error is surfaced
in the stats and the status callback. A table already committed is not re-committed when
a sibling table of the same flush fails. At shutdown the writer keeps trying until its
deadline; what is still unwritten is spilled to Parquet files and reported, never dropped.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from marketlake.lake import Lake
from streaming import buffers
from streaming.config import StreamStats
from streaming.state import StateStore, iso_us, now_us

log = logging.getLogger(__name__)

#: Called on the writer thread after each commit: (table, frame, commit time in epoch µs).
CommitHook = Callable[[str, pl.DataFrame, int], None]


class DeltaSink:
    """Writes flushes to the lake on its own thread, retrying until they land."""

    def __init__(
        self,
        lake: Lake,
        exchange: str,
        stats: StreamStats,
        state: StateStore | None,
        *,
        state_header: dict[str, Any],
        on_commit: CommitHook | None = None,
        retry_base_s: float = 0.5,
        retry_cap_s: float = 30.0,
    ) -> None:
        self.lake = lake
        self.exchange = exchange
        self.stats = stats
        self.state = state
        self._state_header = state_header
        self._on_commit = on_commit
        self._retry_base_s = retry_base_s
        self._retry_cap_s = retry_cap_s
        self._queue: collections.deque[_Pending] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._deadline = float("inf")
        self._thread = threading.Thread(target=self._run, name="delta-sink", daemon=True)
        self.land_lag_ms: float | None = None
        self.last_flush_us: int | None = None
        self.receive_lag_ms: float | None = None

    def start(self) -> None:
        self._thread.start()

    def submit(self, taken: buffers.Taken) -> None:
        with self._cond:
            self._queue.append(_Pending(taken))
            self._cond.notify_all()

    @property
    def pending_rows(self) -> int:
        with self._cond:
            return sum(p.rows for p in self._queue)

    def close(self, timeout_s: float) -> list[dict[str, pl.DataFrame]]:
        """Write what is queued, trying for at most ``timeout_s``; return what never landed."""
        with self._cond:
            self._closing = True
            self._deadline = time.monotonic() + timeout_s
            self._cond.notify_all()
        self._thread.join(timeout_s + 5.0)
        with self._cond:
            left = list(self._queue)
            self._queue.clear()
        unwritten = []
        for pending in left:
            try:
                unwritten.append(pending.remaining_frames(self.exchange))
            except Exception as error:  # a bug in frame building: say so, loudly
                self.stats.last_error = f"could not build frames to spill: {error!r}"[:500]
                log.exception("could not build frames of an unwritten flush")
        return unwritten

    # --- the writer thread --------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                pending = self._queue[0]
            if not self._write(pending):
                return  # shutting down with the lake still failing: close() spills the rest
            with self._cond:
                self._queue.popleft()

    def _write(self, pending: _Pending) -> bool:
        """Commit every table of one flush, then the checkpoint; False if it gave up."""
        attempt = 0
        while True:
            try:
                frames = pending.frames(self.exchange)
                for table, frame in list(frames.items()):
                    self.lake.append(table, frame, buffers.PARTITIONS[table])
                    committed = now_us()
                    del frames[table]
                    self._landed(table, frame, committed)
                break
            except Exception as error:  # any storage error: keep the rows, retry
                attempt += 1
                self.stats.write_errors += 1
                self.stats.last_error = f"{type(error).__name__}: {error}"[:500]
                log.warning("lake write failed (attempt %d): %s", attempt, self.stats.last_error)
                delay = min(self._retry_cap_s, self._retry_base_s * 2 ** min(attempt - 1, 16))
                with self._cond:
                    if self._closing and time.monotonic() + delay > self._deadline:
                        return False
                    self._cond.wait(delay)
        self.stats.flushes += 1
        self.last_flush_us = now_us()
        self._write_state(pending.taken.checkpoint)
        return True

    def _landed(self, table: str, frame: pl.DataFrame, committed_us: int) -> None:
        rows = self.stats.rows_landed
        rows[table] = rows.get(table, 0) + frame.height
        if table == "ticks_trades" and frame.height:
            newest = frame.get_column("received_at").max()
            if newest is not None:
                self.land_lag_ms = (committed_us - _epoch_us(newest)) / 1000
        if self._on_commit is not None:
            try:
                self._on_commit(table, frame, committed_us)
            except Exception:
                log.exception("commit hook failed")

    def _write_state(self, checkpoint: dict[str, Any]) -> None:
        if self.state is None or not checkpoint:
            return
        stats = self.stats
        state = {
            **self._state_header,
            "updated_at": iso_us(now_us()),
            "last_flush_at": iso_us(self.last_flush_us),
            "symbols": checkpoint.get("symbols", {}),
            "counts": {
                "messages": stats.messages,
                "rows_landed": dict(stats.rows_landed),
                "quarantined": stats.quarantined,
                "duplicates": stats.duplicates,
                "outliers": stats.outliers,
                "gaps": stats.gaps,
                "gaps_filled": stats.gaps_filled,
                "gap_rows_filled": stats.gap_rows_filled,
                "reconnects": stats.reconnects,
                "disconnects": stats.disconnects,
                "write_errors": stats.write_errors,
                "flushes": stats.flushes,
            },
            "lag_ms": {"receive": checkpoint.get("receive_lag_ms"), "land": self.land_lag_ms},
        }
        for attempt in range(3):
            try:
                self.state.write(state)
                return
            except Exception as error:
                stats.last_error = f"state file: {type(error).__name__}: {error}"[:500]
                log.warning("state write failed (attempt %d): %s", attempt + 1, error)
                time.sleep(0.2 * (attempt + 1))


def _epoch_us(value: Any) -> int:
    """A Datetime(us, UTC) value from Polars as epoch µs."""
    import datetime as dt

    if isinstance(value, dt.datetime):
        return (value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
    return int(value)


class _Pending:
    """One flush on its way to the lake; frames are built once, committed tables dropped."""

    def __init__(self, taken: buffers.Taken) -> None:
        self.taken = taken
        self.rows = taken.rows
        self._frames: dict[str, pl.DataFrame] | None = None

    def frames(self, exchange: str) -> dict[str, pl.DataFrame]:
        if self._frames is None:
            self._frames = buffers.frames(self.taken, exchange, now_us())
        return self._frames

    def remaining_frames(self, exchange: str) -> dict[str, pl.DataFrame]:
        return self.frames(exchange)


def spill(unwritten: list[dict[str, pl.DataFrame]], directory: Path) -> list[str]:
    """Write frames the lake refused to local Parquet files (one per table and flush)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    stamp = now_us()
    for index, frames in enumerate(unwritten):
        for table, frame in frames.items():
            path = directory / f"{table}-{stamp}-{index}.parquet"
            frame.write_parquet(path)
            paths.append(str(path))
    if paths:
        (directory / f"README-{stamp}.json").write_bytes(
            orjson.dumps(
                {
                    "why": "the lake stayed unwritable until shutdown; append these files "
                    "to the named tables (Lake.append) once it is back",
                    "files": paths,
                },
                option=orjson.OPT_INDENT_2,
            )
        )
    return paths
