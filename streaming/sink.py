"""The Delta sink: one writer thread, flushes in order, nothing dropped.

Delta commits block for tens of milliseconds (more on S3), so they never run on the event
loop: the loop hands a `Taken` (the swapped-out column lists) to this thread, which builds
the frames, appends one commit per table and then writes the checkpoint. Flushes are
written strictly in order by a single thread, so the checkpoint never claims a later flush
before an earlier one has landed.

Group commit: a commit costs about the same for 10 rows as for 100,000, so a writer that
finds several flushes queued takes them all (up to ``group_max_flushes`` and
``group_max_rows``, so one commit stays bounded) and lands them as one commit per table,
each table's frames concatenated in flush order, then writes the checkpoint of the group's
last flush. A writer that falls behind thus catches up instead of queueing without bound.
A group is all or nothing per table, like a single flush: the checkpoint is written only
once every table of the group has landed.

A failing write is retried with capped backoff, forever while running; the group stays
the one being written (later flushes queue behind it, in memory) and the error is surfaced
in the stats and the status callback. A table already committed is not re-committed when
a sibling table of the same group fails. At shutdown the writer keeps trying until its
deadline; what is still unwritten is spilled to Parquet files and reported, never dropped
(`DeltaSink.close` says what happens to a commit still running at the deadline).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
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

    #: How long `close` waits past its deadline for the group being written to finish.
    CLOSE_GRACE_S = 5.0
    #: At most this many queued flushes, or rows (the first flush always goes), per commit:
    #: 5 s of production flushes, and a commit (and a maybe-landed spill) of bounded size.
    GROUP_MAX_FLUSHES = 64
    GROUP_MAX_ROWS = 500_000

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
        group_max_flushes: int | None = None,
        group_max_rows: int | None = None,
    ) -> None:
        self.lake = lake
        self.exchange = exchange
        self.stats = stats
        self.state = state
        self._state_header = state_header
        self._on_commit = on_commit
        self._retry_base_s = retry_base_s
        self._retry_cap_s = retry_cap_s
        self._group_max_flushes = group_max_flushes or self.GROUP_MAX_FLUSHES
        self._group_max_rows = group_max_rows or self.GROUP_MAX_ROWS
        #: Flushes not taken by the writer yet, and the group it is writing (taken off the
        #: queue, kept until all its tables and its checkpoint are written).
        self._queue: collections.deque[buffers.Taken] = collections.deque()
        self._writing: _Group | None = None
        self._cond = threading.Condition()
        self._closing = False
        self._deadline = float("inf")
        #: Set by `close` when it takes the queue over: from then on the writer commits
        #: nothing more and touches neither the queue nor the flush it was writing.
        self._handed_over = False
        #: The table whose commit is running right now (the group's), if any.
        self._committing: str | None = None
        self._thread = threading.Thread(target=self._run, name="delta-sink", daemon=True)
        self.land_lag_ms: float | None = None
        self.last_flush_us: int | None = None
        self.receive_lag_ms: float | None = None

    def start(self) -> None:
        self._thread.start()

    def submit(self, taken: buffers.Taken) -> None:
        with self._cond:
            self._queue.append(taken)
            self._cond.notify_all()

    @property
    def pending_rows(self) -> int:
        with self._cond:
            writing = self._writing.rows if self._writing is not None else 0
            return writing + sum(taken.rows for taken in self._queue)

    def close(self, timeout_s: float) -> list[Unwritten]:
        """Write what is queued, trying for at most ``timeout_s``; return what never landed.

        The writer starts no new group after the deadline and is given `CLOSE_GRACE_S` more
        to finish the one it is writing. If even that is not enough (a commit hanging on a
        loaded machine or a stalled object store), `close` takes the queue over anyway: the
        writer commits nothing more, and every table not committed is returned, in order, to
        be spilled (the group being written as one `Unwritten`, each queued flush as one).
        The one commit still running then cannot be called off (deltalake has no cancel) and
        may still land: its table comes back too, marked ``maybe_landed``, in one file with
        exactly the rows of that commit.

        Spilled as well rather than waited for, because a wait would be unbounded: a hung
        commit would hold a stopping run past its grace (SIGTERM then SIGKILL, a Dagster
        termination) and everything queued behind it would be lost with the process. Spilled,
        every row is in the table or in the spill, and the only possible duplicate is named:
        a Delta commit is atomic, so that file's rows are either all in the table already or
        none are (the writer logs which, if the commit returns before the process ends).
        """
        with self._cond:
            self._closing = True
            self._deadline = time.monotonic() + timeout_s
            self._cond.notify_all()
        self._thread.join(timeout_s + self.CLOSE_GRACE_S)
        with self._cond:
            self._handed_over = True
            group = self._writing
            left = list(self._queue)
            self._queue.clear()
            in_doubt = self._committing if self._thread.is_alive() else None
            # A snapshot under the lock: the writer's later bookkeeping cannot change it.
            built = group.built_frames() if group is not None else None
        batches = ([group.flushes] if group is not None else []) + [[taken] for taken in left]
        unwritten = []
        for index, flushes in enumerate(batches):
            try:
                frames = built if index == 0 and built is not None else self._frames(flushes)
            except Exception as error:  # a bug in frame building: say so, loudly
                self.stats.last_error = f"could not build frames to spill: {error!r}"[:500]
                log.exception("could not build frames of an unwritten flush")
                continue
            doubt = in_doubt if index == 0 and group is not None and in_doubt in frames else None
            if frames:
                unwritten.append(Unwritten(frames, maybe_landed=doubt))
        if in_doubt is not None:
            log.error(
                "the %s commit was still running %s s after the shutdown deadline: its rows "
                "are spilled too and may also be in the table (maybe_landed)",
                in_doubt,
                self.CLOSE_GRACE_S,
            )
        return unwritten

    # --- the writer thread --------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue or self._handed_over:
                    return
                if self._closing and time.monotonic() >= self._deadline:
                    return  # out of time: close() spills what is left
                group = self._writing = self._take_group()
            if not self._write(group):
                return  # shutting down with the lake still failing: close() spills the rest
            with self._cond:
                if self._handed_over:
                    return
                self._writing = None

    def _take_group(self) -> _Group:
        """The head flush and those queued behind it, within the group's bounds (locked)."""
        flushes = [self._queue.popleft()]
        rows = flushes[0].rows
        while (
            self._queue
            and len(flushes) < self._group_max_flushes
            and rows + self._queue[0].rows <= self._group_max_rows
        ):
            flushes.append(self._queue.popleft())
            rows += flushes[-1].rows
        return _Group(flushes, self._frames)

    def _frames(self, flushes: list[buffers.Taken]) -> dict[str, pl.DataFrame]:
        """The non-empty tables of consecutive flushes, each concatenated in flush order."""
        ingested_at = now_us()
        parts: dict[str, list[pl.DataFrame]] = {}
        for taken in flushes:
            for table, frame in buffers.frames(taken, self.exchange, ingested_at).items():
                parts.setdefault(table, []).append(frame)
        return {
            table: pl.concat(parts[table]) if len(parts[table]) > 1 else parts[table][0]
            for table in buffers.PARTITIONS
            if table in parts
        }

    def _write(self, group: _Group) -> bool:
        """Commit every table of one group, then the checkpoint; False if it gave up.

        Tables leave the group (under the lock) as they are committed, so `close` always
        sees exactly the tables not committed yet, and ``_committing`` the one in doubt.
        """
        attempt = 0
        while True:
            try:
                frames = group.frames()
                for table, frame in list(frames.items()):
                    with self._cond:
                        if self._handed_over:
                            return False
                        self._committing = table
                    try:
                        self.lake.append(table, frame, buffers.PARTITIONS[table])
                    finally:
                        with self._cond:
                            self._committing = None
                            late = self._handed_over
                    committed = now_us()
                    if late:
                        log.warning(
                            "the %s commit still running at the shutdown deadline landed after "
                            "all (%d rows): its maybe_landed spill file is already in the table",
                            table,
                            frame.height,
                        )
                        return False
                    with self._cond:
                        del frames[table]
                    self.stats.commits += 1
                    self._landed(table, frame, committed)
                break
            except Exception as error:  # any storage error: keep the rows, retry
                with self._cond:
                    if self._handed_over:  # the run's stats are final: only say it
                        log.warning(
                            "the commit still running at the shutdown deadline failed: its "
                            "maybe_landed spill file is the only copy of its rows (%s: %s)",
                            type(error).__name__,
                            error,
                        )
                        return False
                attempt += 1
                self.stats.write_errors += 1
                self.stats.last_error = f"{type(error).__name__}: {error}"[:500]
                log.warning("lake write failed (attempt %d): %s", attempt, self.stats.last_error)
                delay = min(self._retry_cap_s, self._retry_base_s * 2 ** min(attempt - 1, 16))
                with self._cond:
                    if self._closing and time.monotonic() + delay > self._deadline:
                        return False
                    self._cond.wait(delay)
        self.stats.flushes += len(group.flushes)
        if len(group.flushes) > 1:
            self.stats.flushes_grouped += len(group.flushes)
        self.last_flush_us = now_us()
        self._write_state(group.checkpoint)
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
                "gaps_not_filled": stats.gaps_not_filled,
                "gap_fills_failed": stats.gap_fills_failed,
                "reconnects": stats.reconnects,
                "disconnects": stats.disconnects,
                "write_errors": stats.write_errors,
                "flushes": stats.flushes,
                "commits": stats.commits,
                "flushes_grouped": stats.flushes_grouped,
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


class _Group:
    """Consecutive flushes on their way to the lake together; frames are built once (by
    ``build``), committed tables dropped."""

    def __init__(
        self,
        flushes: list[buffers.Taken],
        build: Callable[[list[buffers.Taken]], dict[str, pl.DataFrame]],
    ) -> None:
        self.flushes = flushes
        self.rows = sum(taken.rows for taken in flushes)
        self._build = build
        self._frames: dict[str, pl.DataFrame] | None = None

    @property
    def checkpoint(self) -> dict[str, Any]:
        """The last flush's: it is true once every flush of the group has landed."""
        return next((t.checkpoint for t in reversed(self.flushes) if t.checkpoint), {})

    def frames(self) -> dict[str, pl.DataFrame]:
        if self._frames is None:
            self._frames = self._build(self.flushes)
        return self._frames

    def built_frames(self) -> dict[str, pl.DataFrame] | None:
        """A copy of the tables not committed yet, or None if the frames were never built."""
        return None if self._frames is None else dict(self._frames)


@dataclass
class Unwritten:
    """The tables of one flush (or group) that did not land by shutdown, to be spilled."""

    frames: dict[str, pl.DataFrame]
    #: The table whose commit was still running when `DeltaSink.close` gave up on it: its
    #: rows may be in the table as well (all of them or none: a commit is atomic).
    maybe_landed: str | None = None

    @property
    def rows(self) -> int:
        return sum(frame.height for frame in self.frames.values())


MAYBE_LANDED = "maybe-landed"


@dataclass
class Spilled:
    """Where `spill` put the rows: every file, and those whose rows may also be in the lake."""

    paths: list[str]
    maybe_landed: list[str]
    maybe_landed_rows: int


def spill(unwritten: list[Unwritten], directory: Path) -> Spilled:
    """Write frames the lake did not take to local Parquet files (one per table and flush).

    A ``*-maybe-landed.parquet`` file holds the rows of a commit that was still running at
    the deadline: check the table before appending it (the README says so too).
    """
    directory.mkdir(parents=True, exist_ok=True)
    paths: list[str] = []
    maybe: list[str] = []
    maybe_rows = 0
    stamp = now_us()
    for index, flush in enumerate(unwritten):
        for table, frame in flush.frames.items():
            doubt = table == flush.maybe_landed
            suffix = f"-{MAYBE_LANDED}" if doubt else ""
            path = directory / f"{table}-{stamp}-{index}{suffix}.parquet"
            frame.write_parquet(path)
            paths.append(str(path))
            if doubt:
                maybe.append(str(path))
                maybe_rows += frame.height
    if paths:
        readme: dict[str, object] = {
            "why": "the lake stayed unwritable (or too slow) until shutdown; append these files "
            "to the named tables (Lake.append) once it is back",
            "files": paths,
        }
        if maybe:
            readme["maybe_landed"] = maybe
            readme["maybe_landed_why"] = (
                "these commits were still running when the writer's deadline passed: each "
                "file's rows are either all in its table already or not at all; look for them "
                "there (e.g. by received_at) before appending"
            )
        (directory / f"README-{stamp}.json").write_bytes(
            orjson.dumps(readme, option=orjson.OPT_INDENT_2)
        )
    return Spilled(paths, maybe, maybe_rows)
