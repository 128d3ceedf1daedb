"""Replay: the frames of a recording, at the recorded pace, to whoever connects.

The recording is anything `exchanges.recording.read_recording` reads (the lander's capture
format and the real-sample formats), served on any path at the recorded pace times
`speed` (None: as fast as possible). Connections share one cursor, like a live stream: a
reconnect continues where the last connection stopped.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from websockets.asyncio.server import ServerConnection

from marketlake.exchanges.recording import Recorded, read_recording
from marketlake.simulator.websocket.faults import WsStats


class Replay:
    def __init__(self, path: Path, speed: float | None) -> None:
        self.path = path
        self.speed = speed
        #: Set once every frame has been sent.
        self.done = threading.Event()
        self._frames: list[Recorded] = []
        self._index = 0
        self._lock: asyncio.Lock | None = None

    def load(self) -> None:
        """Read the recording: at start, so a bad file fails the start, not a connection."""
        self._frames = list(read_recording(self.path))

    async def serve(self, ws: ServerConnection, stats: WsStats) -> None:
        if self._lock is None:  # made in the server's loop, on its first connection
            self._lock = asyncio.Lock()
        async with self._lock:  # one reader of the shared cursor at a time
            frames = self._frames
            started = time.monotonic()
            origin: int | None = None
            while self._index < len(frames):
                recorded = frames[self._index]
                if self.speed and recorded.received_at_us is not None:
                    if origin is None:
                        origin = recorded.received_at_us
                        started = time.monotonic()
                    due = started + (recorded.received_at_us - origin) / 1e6 / self.speed
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                await ws.send(recorded.raw)
                stats.frames += 1
                self._index += 1
            self.done.set()
        await ws.wait_closed()
