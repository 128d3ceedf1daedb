"""What the venues' sessions share: fault injection, trade cursors, the send counter.

A session is one client connection. Its cursor per symbol is the last trade id it has
sent, so each tick sends exactly the trades that happened since (`new_trades`), from the
same deterministic universe the archive and REST serve.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import polars as pl
from websockets.asyncio.server import ServerConnection

from marketlake.simulator import data, formats

if TYPE_CHECKING:
    from marketlake.simulator.websocket.server import WsSimulator


class Session:
    """What the venues' sessions share: faults, trade cursors, the send counter."""

    def __init__(self, sim: WsSimulator, ws: ServerConnection) -> None:
        self.sim = sim
        self.ws = ws
        self.cfg = sim.config
        self.faults = sim.faults
        self.opened = time.monotonic()
        self.sent = 0
        self.malformed = itertools.count()
        self.cursor: dict[str, int] = {}

    def dropping(self) -> bool:
        after = self.faults.drop_every_s
        if after is not None and time.monotonic() - self.opened >= after:
            self.sim.stats.drops += 1
            self.ws.transport.abort()
            return True
        return False

    def stalled(self) -> bool:
        after = self.faults.stall_after_s
        if after is None:
            return False
        age = time.monotonic() - self.opened
        return after <= age < after + self.faults.stall_for_s

    def skip(self, trade_id: int) -> bool:
        faults = self.faults
        return trade_id in faults.skip_trade_ids or bool(
            faults.skip_every and trade_id % faults.skip_every == 0
        )

    def duplicate(self, trade_id: int) -> bool:
        every = self.faults.duplicate_every
        return bool(every and trade_id % every == 0)

    async def send(self, payload: bytes | str, *, text: bool | None = None) -> None:
        """Send one frame (``text=True``: bytes as a text frame, as OKX and Deribit send)."""
        await self.ws.send(payload, text=text)
        self.sim.stats.frames += 1
        self.sent += 1
        every = self.faults.malformed_every
        if every and self.sent % every == 0:
            self.sim.stats.malformed += 1
            bad = self.bad_frame(next(self.malformed))
            self.sim.stats.malformed_frames.append(bad)
            await self.ws.send(bad, text=text)

    async def while_reading(self, writer: Callable[[], Awaitable[None]]) -> None:
        """Run `writer` (what the server sends) while `read` answers what the client sends."""
        reader = asyncio.create_task(self.read())
        try:
            await writer()
        finally:
            reader.cancel()

    async def read(self) -> None:
        raise NotImplementedError

    def bad_frame(self, n: int) -> bytes:
        raise NotImplementedError

    def new_trades(self, symbol: str, now_us: int) -> pl.DataFrame | None:
        """The trades of ``symbol`` that happened since the last call (a TRADE_SCHEMA frame)."""
        last = data.last_trade_id_at(symbol, now_us, self.cfg)
        previous = self.cursor.get(symbol)
        self.cursor[symbol] = last
        if previous is None or last <= previous:
            return None
        return data.trades_between_ids(symbol, previous + 1, last, self.cfg)


class TickedSession(Session):
    """A session whose live market is one loop of ticks, as OKX and Deribit send it: answer
    the queued requests, then (unless paused) the trades since the last tick (skipped while
    stalled), the quotes, and every ``depth_interval_s`` the books, all of the book of the
    tick's very millisecond."""

    requests: asyncio.Queue

    async def run(self, sender: Callable[[], Awaitable[None]] | None = None) -> None:
        """Answer requests while `sender` (the live market by default) writes."""
        await self.while_reading(sender or self._live)

    async def answer(self, request: object) -> None:
        raise NotImplementedError

    async def closing(self) -> bool:
        """True once the connection is gone (dropped by a fault, or closed by the venue)."""
        return self.dropping()

    async def send_trades(self, now_us: int, stalled: bool) -> None:
        raise NotImplementedError

    async def send_quotes(self, t_us: int) -> None:
        raise NotImplementedError

    async def send_books(self, t_us: int) -> None:
        raise NotImplementedError

    async def _live(self) -> None:
        sim = self.sim
        depth_due = 0.0
        while True:
            await asyncio.sleep(sim.tick_s)
            while not self.requests.empty():
                await self.answer(self.requests.get_nowait())
            if sim.paused:
                continue
            if await self.closing():
                return
            now = sim.now_us()
            t_us = now // 1000 * 1000  # timestamps are ms: the book of that very ms
            stalled = self.stalled()
            await self.send_trades(now, stalled)
            if stalled:
                continue
            await self.send_quotes(t_us)
            mono = time.monotonic()
            if mono >= depth_due:
                depth_due = mono + sim.depth_interval_s
                await self.send_books(t_us)


def trade_time_us(time_value: int) -> int:
    """A universe trade's `time` (ms before 2025, µs from 2025, as in the archive) in µs."""
    return time_value if time_value >= formats.US_THRESHOLD else time_value * 1000
