"""Websocket connections that stay up: reconnect, watchdog, rollover, staggered attempts.

One `ShardConnection` keeps one shard (a set of symbols on one URL) subscribed for as long
as the run lasts:

- **connect** with ``compression=None`` (permessage-deflate costs ~4x the CPU per frame at
  these rates) and ``max_size`` from the feed (a bigger frame closes the connection with
  1009 instead of buffering it); pings from the server are answered by ``websockets``;
- **reconnect** after any close with capped exponential backoff and jitter, every attempt
  taking a token from an `AttemptLimiter` shared by all shards (Binance allows 300 attempts
  per 5 minutes per IP), first attempts of shards staggered;
- **watchdog**: no frame for ``silence_timeout_s`` closes the connection and reconnects (a
  half-open TCP connection otherwise looks alive forever);
- **rollover** before the exchange's age limit (Binance cuts at 24 h): the replacement is
  opened and must deliver its first frame before the old one is closed, so nothing is
  missed; the overlap is deduplicated by the lander (trade ids, book update ids);
- **resync**: when the handler says a connection's state is lost (a sequence gap), it is
  recycled like a disconnect; when it says the connection is about to go away (a server
  shutdown notice), it is rolled over now;
- **control frames** (subscribe messages, a book resubscription, an answer to a heartbeat,
  the keep-alive an exchange wants after a silence) go through one outbox per connection,
  sent in order at the feed's control-message rate, an urgent one (a heartbeat answer)
  ahead of what is queued.

It knows no exchange: URLs and subscribe messages come from the `Shard`, frames go to a
`FrameHandler` with the connection's own `Parser`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from marketlake.exchanges.feed import Parser, Resync, Send, Shard


@dataclass(frozen=True)
class ConnectionPolicy:
    """How connections behave; built from the feed's limits and the run's config."""

    silence_timeout_s: float
    max_age_s: float | None
    rollover_margin_s: float
    reconnect_base_s: float
    reconnect_cap_s: float
    max_frame_bytes: int
    control_messages_per_s: float
    open_timeout_s: float = 10.0
    close_timeout_s: float = 2.0
    ping_interval_s: float | None = 20.0
    #: Frames websockets may hold before TCP backpressure; deep enough for bursts.
    max_queue: int = 4096
    #: A connection that lived this long with frames resets the backoff.
    healthy_after_s: float = 2.0
    #: Sent after ``keepalive_after_s`` without a frame (OKX's text ``ping``), or None.
    keepalive: bytes | None = None
    keepalive_after_s: float = 20.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Capped exponential with "equal jitter": between half and all of the ceiling.

        Never near zero, so a server that drops every connection is not hammered, yet
        shards hit by the same outage spread out.
        """
        ceiling = min(self.reconnect_cap_s, self.reconnect_base_s * 2 ** max(attempt, 0))
        return ceiling * (0.5 + 0.5 * rng.random())

    @property
    def rollover_after_s(self) -> float | None:
        if self.max_age_s is None:
            return None
        margin = min(self.rollover_margin_s, self.max_age_s / 2)
        return self.max_age_s - margin


class AttemptLimiter:
    """At most ``attempts`` connection attempts per sliding ``window_s``, process-wide."""

    def __init__(
        self,
        attempts: int,
        window_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self._clock = clock
        self._sleep = sleep
        self._times: collections.deque[float] = collections.deque()

    async def acquire(self) -> float:
        """Wait for a free attempt; return the seconds waited."""
        waited = 0.0
        while True:
            now = self._clock()
            while self._times and self._times[0] + self.window_s <= now:
                self._times.popleft()
            if len(self._times) < self.attempts:
                self._times.append(now)
                return waited
            delay = self._times[0] + self.window_s - now
            waited += delay
            await self._sleep(delay)


class FrameHandler(Protocol):
    """Where frames and connection events go (the lander)."""

    def frame(
        self, conn: str, parser: Parser, raw: bytes, received_at_us: int
    ) -> Resync | Send | None:
        """Land one frame; a `Resync` asks for the connection to be replaced, a `Send` for
        frames to be sent on it."""
        ...

    def event(self, kind: str, detail: dict[str, Any], symbol: str | None = None) -> None: ...


class Outbox:
    """Control frames waiting to be sent: FIFO, except that urgent ones go first."""

    def __init__(self) -> None:
        self._frames: collections.deque[bytes] = collections.deque()
        self._ready = asyncio.Event()

    def put(self, frames: tuple[bytes, ...], *, urgent: bool = False) -> None:
        if urgent:
            self._frames.extendleft(reversed(frames))
        else:
            self._frames.extend(frames)
        if self._frames:
            self._ready.set()

    async def get(self) -> bytes:
        while not self._frames:
            self._ready.clear()
            await self._ready.wait()
        return self._frames.popleft()

    def __len__(self) -> int:
        return len(self._frames)


class _Live:
    """One open websocket and what is known about it."""

    def __init__(self, name: str, ws: ClientConnection, parser: Parser) -> None:
        self.name = name
        self.ws = ws
        self.parser = parser
        self.opened = time.monotonic()
        self.last_frame = self.opened
        #: monotonic time of the next rollover attempt (None: the feed has no age limit)
        self.rollover_at: float | None = None
        #: set when the server announced it is going away: roll over now
        self.rollover_now = asyncio.Event()
        self.frames = 0
        self.first_frame = asyncio.Event()
        self.reason = "closed"
        self.reader: asyncio.Task[None] | None = None
        self.helpers: list[asyncio.Task[None]] = []
        #: Control frames to send, in order, at the feed's control-message rate.
        self.outbox = Outbox()
        self.pinged_at = 0.0


def _close_reason(error: ConnectionClosed) -> str:
    close = error.rcvd or error.sent
    if close is None:
        return "connection lost without a close frame"
    return f"close {close.code} {close.reason}".strip()


class ShardConnection:
    """Keeps one shard connected until ``stop`` is set."""

    def __init__(
        self,
        index: int,
        shard: Shard,
        parser_factory: Callable[[], Parser],
        policy: ConnectionPolicy,
        limiter: AttemptLimiter,
        handler: FrameHandler,
        *,
        start_delay_s: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        self.index = index
        self.shard = shard
        self._parser_factory = parser_factory
        self.policy = policy
        self._limiter = limiter
        self._handler = handler
        self._start_delay_s = start_delay_s
        self._rng = rng or random.Random()
        self._serial = 0
        self.connects = 0
        self.lives: list[_Live] = []

    # --- the supervisor -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, read, reconnect and roll over until ``stop``; closes everything on exit."""
        try:
            if self._start_delay_s and await _wait(stop, self._start_delay_s):
                return
            live = await self._open_with_retries(stop, reconnect=False)
            while live is not None:
                live = await self._supervise(live, stop)
        finally:
            await asyncio.gather(*(self._close(live, "stop") for live in list(self.lives)))

    async def _supervise(self, live: _Live, stop: asyncio.Event) -> _Live | None:
        """Wait for the connection to end, be stopped, or be due for rollover."""
        stop_wait = asyncio.ensure_future(stop.wait())
        now_wait = asyncio.ensure_future(live.rollover_now.wait())
        waits: set[asyncio.Future[Any]] = {stop_wait, now_wait, live.reader}  # type: ignore[arg-type]
        timeout = None
        if live.rollover_at is not None:
            timeout = max(0.0, live.rollover_at - time.monotonic())
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_wait.cancel()
            now_wait.cancel()
        if stop.is_set():
            return None
        if live.reader is not None and live.reader.done():
            await self._close(live, live.reason)
            self._handler.event(
                "disconnect", {"conn": live.name, "reason": live.reason, "frames": live.frames}
            )
            lived = time.monotonic() - live.opened
            healthy = live.frames > 0 and lived >= self.policy.healthy_after_s
            return await self._open_with_retries(
                stop, reconnect=True, first_attempt=0 if healthy else 1
            )
        return await self._rollover(live, stop)

    async def _rollover(self, old: _Live, stop: asyncio.Event) -> _Live | None:
        """Open the replacement, wait for its first frame, then close the old connection."""
        new = await self._open_with_retries(stop, reconnect=False, kind="rollover_connect")
        if new is None:
            return None
        first = asyncio.ensure_future(new.first_frame.wait())
        try:
            await asyncio.wait(
                {first, new.reader},  # type: ignore[arg-type]
                timeout=self.policy.open_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            first.cancel()
        if not new.first_frame.is_set():
            # The replacement is not delivering: keep the old one and try again shortly.
            await self._close(new, "rollover replacement delivered nothing")
            retry_in = max(1.0, min(60.0, self.policy.rollover_margin_s / 4))
            old.rollover_at = time.monotonic() + retry_in
            old.rollover_now.clear()
            self._handler.event("rollover_failed", {"old": old.name, "retry_in_s": retry_in})
            return old
        self._handler.event(
            "rollover",
            {"old": old.name, "new": new.name, "age_s": round(time.monotonic() - old.opened, 3)},
        )
        await self._retire(old, "rollover")
        return new

    # --- opening ------------------------------------------------------------------------------

    async def _open_with_retries(
        self, stop: asyncio.Event, *, reconnect: bool, first_attempt: int = 0, kind: str = "connect"
    ) -> _Live | None:
        attempt = first_attempt
        while not stop.is_set():
            if attempt > 0:
                delay = self.policy.backoff(attempt - 1, self._rng)
            else:
                # Even a first reconnect is jittered, so shards cut by the same blip spread out.
                delay = self.policy.reconnect_base_s * self._rng.random() if reconnect else 0.0
            if delay and await _wait(stop, delay):
                return None
            await self._limiter.acquire()
            if stop.is_set():
                return None
            try:
                live = await self._open()
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI, ConnectionClosed) as error:
                attempt += 1
                self._handler.event(
                    "connect_failed",
                    {
                        "shard": self.index,
                        "attempt": attempt,
                        "error": f"{type(error).__name__}: {error}"[:300],
                    },
                )
                continue
            self.connects += 1
            self._handler.event(
                "reconnect" if reconnect else kind,
                {"conn": live.name, "symbols": len(self.shard.symbols), "attempt": attempt + 1},
            )
            return live
        return None

    async def _open(self) -> _Live:
        policy = self.policy
        ws = await connect(
            self.shard.url,
            compression=None,
            max_size=policy.max_frame_bytes,
            max_queue=policy.max_queue,
            open_timeout=policy.open_timeout_s,
            close_timeout=policy.close_timeout_s,
            ping_interval=policy.ping_interval_s,
            ping_timeout=policy.ping_interval_s,
        )
        self._serial += 1
        live = _Live(f"{self.index}.{self._serial}", ws, self._parser_factory())
        if policy.rollover_after_s is not None:
            live.rollover_at = live.opened + policy.rollover_after_s
        self.lives.append(live)
        live.reader = asyncio.create_task(self._read(live), name=f"ws-read-{live.name}")
        live.helpers.append(
            asyncio.create_task(self._watchdog(live), name=f"ws-watchdog-{live.name}")
        )
        live.outbox.put(self.shard.subscribe)
        live.helpers.append(asyncio.create_task(self._sender(live), name=f"ws-send-{live.name}"))
        return live

    async def _sender(self, live: _Live) -> None:
        """Send the outbox (subscribe messages first) at the feed's control-message rate."""
        spacing = 1.0 / self.policy.control_messages_per_s
        while True:
            message = await live.outbox.get()
            with contextlib.suppress(ConnectionClosed):
                await live.ws.send(message, text=True)
            await asyncio.sleep(spacing)

    # --- reading ------------------------------------------------------------------------------

    async def _read(self, live: _Live) -> None:
        """The hot loop: receive, stamp, hand over. Ends when the connection does."""
        recv = live.ws.recv
        land = self._handler.frame
        parser = live.parser
        name = live.name
        clock = time.time_ns
        monotonic = time.monotonic
        try:
            raw = await recv(decode=False)
            live.first_frame.set()
            while True:
                received_at_us = clock() // 1000
                live.frames += 1
                resync = land(name, parser, raw, received_at_us)
                if type(resync) is Send:
                    live.outbox.put(resync.messages, urgent=resync.urgent)
                elif resync is not None:
                    self._handler.event(
                        "resync",
                        {"conn": name, "reason": resync.reason, "rollover": resync.rollover},
                    )
                    if not resync.rollover:
                        live.reason = f"resync: {resync.reason}"
                        return
                    live.rollover_now.set()  # keep reading until the replacement delivers
                live.last_frame = monotonic()
                raw = await recv(decode=False)
        except ConnectionClosed as error:
            live.reason = _close_reason(error)

    async def _watchdog(self, live: _Live) -> None:
        timeout = self.policy.silence_timeout_s
        keepalive, keepalive_after = self.policy.keepalive, self.policy.keepalive_after_s
        tick = min(1.0, timeout / 4, keepalive_after / 4 if keepalive else 1.0)
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            silent = now - live.last_frame
            pinged = live.pinged_at >= live.last_frame  # once per silence
            if keepalive is not None and silent > keepalive_after and not pinged:
                live.pinged_at = now
                live.outbox.put((keepalive,), urgent=True)
            if silent > timeout:
                live.reason = f"silent for {silent:.1f} s"
                self._handler.event("watchdog", {"conn": live.name, "silent_s": round(silent, 3)})
                if live.reader is not None:
                    live.reader.cancel()
                return

    async def _retire(self, live: _Live, reason: str) -> None:
        """Close a replaced connection after landing every frame it had already received.

        Cancelling its reader (as `_close` does) would drop the frames still queued in the
        websocket when the lander runs behind, a hole at every rollover. A close frame
        stops the server sending; the reader then lands what was queued before it and ends
        on the server's answering close. A reader that does not end within the close
        timeout is cancelled like any other.
        """
        if live in self.lives:
            self.lives.remove(live)
        for task in live.helpers:
            task.cancel()
        with contextlib.suppress(Exception):
            await live.ws.close(code=1000, reason=reason[:100])
        if live.reader is not None and not live.reader.done():
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(live.reader, timeout=self.policy.open_timeout_s)
        await self._close(live, reason)

    async def _close(self, live: _Live, reason: str) -> None:
        if live in self.lives:
            self.lives.remove(live)
        for task in live.helpers:
            task.cancel()
        if live.reader is not None and not live.reader.done():
            live.reader.cancel()
        with contextlib.suppress(Exception):
            await live.ws.close(code=1000, reason=reason[:100])
        for task in [*live.helpers, live.reader]:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; True if ``stop`` was set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True
