"""`run_stream(config)`: the landing service as one call, with and without Dagster.

Inside: one asyncio loop running a `ShardConnection` per shard, a flush loop (size or time
threshold), a gap-fill loop, a status loop and a deadline; the Delta writes on the sink's
thread. Stopping, by `StreamRunner.stop()` (from any thread), SIGTERM/SIGINT, the deadline
or cancelling `run_async`, always goes through the same shutdown: close the connections,
let gap fills in flight finish, flush the buffers, wait for the writer, write the state.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import IO, Any

from marketlake.exchanges.feed import Feed, feed_for
from marketlake.lake import Lake
from streaming.config import StreamConfig, StreamStats, StreamStatus
from streaming.connection import AttemptLimiter, ConnectionPolicy, ShardConnection
from streaming.lander import Lander
from streaming.sink import CommitHook, DeltaSink, spill
from streaming.state import VERSION, StateStore

log = logging.getLogger(__name__)

_TICK_S = 0.05


class StreamRunner:
    """One run of the landing service; `stop()` may be called from any thread."""

    def __init__(
        self, config: StreamConfig, *, feed: Feed | None = None, on_commit: CommitHook | None = None
    ) -> None:
        self.config = config
        self.feed = feed or feed_for(config.exchange, **dict(config.feed_options))
        self.stats = StreamStats()
        self._on_commit = on_commit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_requested = threading.Event()
        self._lander: Lander | None = None
        self._sink: DeltaSink | None = None
        self._connections: list[ShardConnection] = []
        self._started = time.monotonic()

    # --- control ------------------------------------------------------------------------------

    def run(self) -> StreamStats:
        """Run until stopped or the configured duration ends (blocks the calling thread)."""
        return asyncio.run(self.run_async())

    def stop(self) -> None:
        """Ask the run to shut down cleanly (flush, write state); safe from any thread."""
        self._stop_requested.set()
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)

    @property
    def stopping(self) -> bool:
        return self._stop_requested.is_set()

    # --- the run ------------------------------------------------------------------------------

    async def run_async(self) -> StreamStats:
        config, feed = self.config, self.feed
        self._loop = asyncio.get_running_loop()
        self._stop = stop = asyncio.Event()
        if self._stop_requested.is_set():
            stop.set()
        self._started = time.monotonic()
        symbols = [feed.normalize_symbol(s) for s in config.symbols]
        if not symbols:
            raise ValueError("no symbols to stream")
        lake = Lake(config.lake, config.lake_storage_options)
        state = StateStore(lake.uri, config.stream_name, config.lake_storage_options)
        prior = await asyncio.to_thread(state.read)
        capture = _open_capture(config.capture)
        filler = feed.gap_filler(
            config.rest_url, weight_limit=config.rest_weight_limit, budget=config.rest_budget
        )
        lander = self._lander = Lander(
            config,
            feed.exchange,
            trade_ids_contiguous=feed.trade_ids_contiguous,
            book_ids_monotonic=feed.book_ids_monotonic,
            stats=self.stats,
            filler=filler,
            capture=capture,
        )
        sink = self._sink = DeltaSink(
            lake,
            feed.exchange,
            self.stats,
            state,
            state_header={
                "version": VERSION,
                "exchange": feed.exchange,
                "name": config.stream_name,
                "pid": os.getpid(),
                "host": socket.gethostname(),
            },
            on_commit=self._on_commit,
        )
        sink.start()
        lander.resume(prior, symbols)
        lander.event(
            "start", {"symbols": symbols, "pid": os.getpid(), "resumed": prior is not None}
        )
        self._connections = self._make_connections(symbols, lander)
        connection_tasks = [
            asyncio.create_task(c.run(stop), name=f"shard-{c.index}") for c in self._connections
        ]
        helpers = [
            asyncio.create_task(self._flush_loop(stop), name="flush"),
            asyncio.create_task(self._fill_loop(stop), name="gap-fill"),
            asyncio.create_task(self._status_loop(stop), name="status"),
        ]
        deadline = self._deadline_s()
        if deadline is not None:
            helpers.append(asyncio.create_task(self._stop_after(stop, deadline), name="deadline"))
        uninstall = self._install_signals(stop)
        failure: BaseException | None = None
        try:
            waiter = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait(
                {waiter, *connection_tasks}, return_when=asyncio.FIRST_COMPLETED
            )
            waiter.cancel()
            for task in done:
                if task is not waiter and not task.cancelled() and task.exception() is not None:
                    failure = task.exception()
                    self.stats.last_error = f"connection crashed: {failure!r}"[:500]
        except asyncio.CancelledError:
            failure = None  # cancellation is a stop request: shut down cleanly, then re-raise
            stop.set()
            await self._shutdown(stop, connection_tasks, helpers, capture, filler)
            uninstall()
            raise
        await self._shutdown(stop, connection_tasks, helpers, capture, filler)
        uninstall()
        if failure is not None:
            raise failure
        return self.stats

    def _make_connections(self, symbols: list[str], lander: Lander) -> list[ShardConnection]:
        config, feed = self.config, self.feed
        policy = ConnectionPolicy(
            silence_timeout_s=config.silence_timeout_s or feed.silence_timeout_s,
            max_age_s=config.max_connection_age_s or feed.max_connection_age_s,
            rollover_margin_s=config.rollover_margin_s,
            reconnect_base_s=config.reconnect_base_s,
            reconnect_cap_s=config.reconnect_cap_s,
            max_frame_bytes=feed.max_frame_bytes,
            control_messages_per_s=feed.control_messages_per_s,
            keepalive=getattr(feed, "keepalive", None),
            keepalive_after_s=getattr(feed, "keepalive_after_s", 20.0),
        )
        limiter = AttemptLimiter(config.connect_attempts, config.connect_window_s)
        return [
            ShardConnection(
                index,
                shard,
                functools.partial(feed.parser, shard.symbols),
                policy,
                limiter,
                lander,
                start_delay_s=index * config.shard_stagger_s,
            )
            for index, shard in enumerate(feed.shards(config.ws_url, symbols))
        ]

    def _deadline_s(self) -> float | None:
        candidates = []
        if self.config.duration_s is not None:
            candidates.append(self.config.duration_s)
        if self.config.until is not None:
            until = self.config.until
            if until.tzinfo is None:
                raise ValueError("until must be timezone-aware")
            candidates.append((until - dt.datetime.now(dt.UTC)).total_seconds())
        return max(0.0, min(candidates)) if candidates else None

    async def _stop_after(self, stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)
        stop.set()

    def _install_signals(self, stop: asyncio.Event) -> Any:
        """SIGTERM/SIGINT -> clean stop, for the run only; the previous handlers come back after.

        Only from the main thread (Python's rule); a caller with its own handling (Dagster)
        passes ``handle_signals=False`` and calls `stop()` itself.
        """
        if (
            not self.config.handle_signals
            or threading.current_thread() is not threading.main_thread()
        ):
            return lambda: None
        loop = asyncio.get_running_loop()
        previous: dict[int, Any] = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                previous[signum] = signal.getsignal(signum)
                loop.add_signal_handler(signum, self._on_signal, signum)

        def uninstall() -> None:
            for signum, handler in previous.items():
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(signum)
                    signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

        return uninstall

    def _on_signal(self, signum: int) -> None:
        log.info("received %s: flushing and stopping", signal.Signals(signum).name)
        if self._lander is not None:
            self._lander.event("signal", {"signal": signal.Signals(signum).name})
        self.stop()

    # --- loops --------------------------------------------------------------------------------

    async def _flush_loop(self, stop: asyncio.Event) -> None:
        """Flush when the buffers hold ``flush_rows`` rows or ``flush_interval_s`` has passed."""
        lander, sink, config = self._lander, self._sink, self.config
        assert lander is not None and sink is not None
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(min(_TICK_S, config.flush_interval_s))
            rows = lander.buffers.rows
            now = time.monotonic()
            if rows >= config.flush_rows or (now - last >= config.flush_interval_s):
                last = now
                if rows:
                    sink.submit(lander.take())

    async def _fill_loop(self, stop: asyncio.Event) -> None:
        assert self._lander is not None
        while not stop.is_set():
            await asyncio.sleep(0.1)
            self._lander.start_due_fills()

    async def _status_loop(self, stop: asyncio.Event) -> None:
        callback = self.config.status_callback
        if callback is None:
            return
        previous_messages, previous_time = 0, time.monotonic()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.config.status_interval_s)
            now = time.monotonic()
            status = self.status(rate_since=(previous_messages, previous_time), now=now)
            previous_messages, previous_time = self.stats.messages, now
            try:
                result = callback(status)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("status callback failed")

    def status(
        self, rate_since: tuple[int, float] | None = None, now: float | None = None
    ) -> StreamStatus:
        """The current `StreamStatus` (rate over ``rate_since`` or the whole run)."""
        stats, lander, sink = self.stats, self._lander, self._sink
        now = time.monotonic() if now is None else now
        since_messages, since_time = rate_since or (0, self._started)
        last = lander.last_trade if lander is not None else None
        return StreamStatus(
            elapsed_s=now - self._started,
            messages=stats.messages,
            messages_per_s=(stats.messages - since_messages) / max(now - since_time, 1e-9),
            rows_landed=dict(stats.rows_landed),
            pending_rows=(lander.buffers.rows if lander else 0)
            + (sink.pending_rows if sink else 0),
            receive_lag_ms=None if last is None else (last.received_at_us - last.ts_us) / 1000,
            land_lag_ms=sink.land_lag_ms if sink else None,
            connections=sum(len(c.lives) for c in self._connections),
            reconnects=stats.reconnects,
            gaps=stats.gaps,
            gaps_filled=stats.gaps_filled,
            quarantined=stats.quarantined,
            duplicates=stats.duplicates,
            write_errors=stats.write_errors,
            last_error=stats.last_error,
            outliers=stats.outliers,
            held=lander.held_count if lander is not None else 0,
            book_breaks=stats.book_breaks,
            book_resyncs=stats.book_resyncs,
        )

    # --- shutdown -----------------------------------------------------------------------------

    async def _shutdown(
        self,
        stop: asyncio.Event,
        connection_tasks: list[asyncio.Task[None]],
        helpers: list[asyncio.Task[None]],
        capture: IO[bytes] | None,
        filler: object | None,
    ) -> None:
        stop.set()
        lander, sink, config = self._lander, self._sink, self.config
        assert lander is not None and sink is not None
        await asyncio.gather(*connection_tasks, return_exceptions=True)
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        lander.settle_held()
        await lander.wait_for_fills(min(10.0, config.shutdown_timeout_s / 3))
        stats = self.stats
        lander.event(
            "stop",
            {
                "messages": stats.messages,
                "gaps": stats.gaps,
                "gaps_filled": stats.gaps_filled,
                "quarantined": stats.quarantined,
                "duplicates": stats.duplicates,
                "outliers": stats.outliers,
                "reconnects": stats.reconnects,
                "book_breaks": stats.book_breaks,
                "book_resyncs": stats.book_resyncs,
            },
        )
        sink.submit(lander.take())
        unwritten = await asyncio.to_thread(sink.close, config.shutdown_timeout_s)
        if capture is not None:
            capture.close()
        close = getattr(filler, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close()
        stats.last_trade_id = dict(lander.sequencer.last)
        stats.elapsed_s = time.monotonic() - self._started
        if unwritten:
            stats.unwritten_rows = sum(flush.rows for flush in unwritten)
            directory = config.spill_dir or (
                Path(config.lake) / "_spill" if Lake(config.lake).is_local else Path("spill")
            )
            spilled = await asyncio.to_thread(spill, unwritten, directory)
            stats.spilled = spilled.paths
            stats.spilled_maybe_landed = spilled.maybe_landed
            stats.maybe_landed_rows = spilled.maybe_landed_rows
            log.error(
                "%d rows could not be written to the lake; spilled to %s",
                stats.unwritten_rows,
                stats.spilled,
            )
            if spilled.maybe_landed:
                log.error(
                    "%d of them may be in the lake as well (a commit still running at the "
                    "deadline): check before appending %s",
                    spilled.maybe_landed_rows,
                    spilled.maybe_landed,
                )


def _open_capture(path: Path | None) -> IO[bytes] | None:
    if path is None:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "ab", buffering=1 << 20)


def run_stream(
    config: StreamConfig, *, feed: Feed | None = None, on_commit: CommitHook | None = None
) -> StreamStats:
    """Land ``config``'s stream until it is stopped or its duration ends; return the stats.

    Blocks the calling thread (an asyncio loop inside). SIGTERM/SIGINT flush and stop it
    when called from the main thread with ``handle_signals``; otherwise use
    `StreamRunner(config).stop()` from another thread, or cancel `StreamRunner.run_async`.
    """
    return StreamRunner(config, feed=feed, on_commit=on_commit).run()
