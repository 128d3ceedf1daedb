"""`WsSimulator`: the websocket exchange on loopback, in a thread of its own.

It owns the lifecycle (start, stop, drop every connection) and routes each connection by
path: ``/stream`` to a Binance session, ``/coinbase`` to a Coinbase one, ``/ws/v5/public``
to an OKX one, ``/ws/api/v2`` to a Deribit one, and any path to the replay when one is
configured. The sessions read the simulator's clock, faults and
pause flag on every tick, so a test can change them while connections are open.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from functools import partial
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from marketlake.simulator import data
from marketlake.simulator.clock import Clock, utc_now
from marketlake.simulator.websocket.binance import BinanceSession
from marketlake.simulator.websocket.coinbase import CoinbaseSession
from marketlake.simulator.websocket.deribit import DeribitSession
from marketlake.simulator.websocket.faults import WsFaults, WsStats
from marketlake.simulator.websocket.max_rate import send_max_rate, send_paced
from marketlake.simulator.websocket.max_rate_venues import (
    send_max_rate_deribit,
    send_max_rate_okx,
)
from marketlake.simulator.websocket.okx import OkxSession
from marketlake.simulator.websocket.replay import Replay

#: The venues' own paths (``wss://ws.okx.com:8443/ws/v5/public``,
#: ``wss://www.deribit.com/ws/api/v2``), so only the host differs from production.
OKX_PATH = "/ws/v5/public"
DERIBIT_PATH = "/ws/api/v2"


class WsSimulator:
    """A websocket exchange on loopback; a context manager like `simulator.Simulator`."""

    def __init__(
        self,
        config: data.SimConfig = data.DEFAULT_CONFIG,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        faults: WsFaults | None = None,
        tick_s: float = 0.01,
        depth_interval_s: float = 0.1,
        quote_interval_s: float = 0.1,
        max_rate: bool = False,
        max_rate_trades_per_s: float | None = None,
        replay: Path | str | None = None,
        replay_speed: float | None = 1.0,
        coinbase_levels: int = 50,
        heartbeat_s: float = 1.0,
        book_levels: int = 50,
        deribit_heartbeat_s: float | None = None,
    ) -> None:
        self.config = config
        self.host = host
        self.port = port
        self.clock: Clock = clock or utc_now
        self.faults = faults or WsFaults()
        self.stats = WsStats()
        self.tick_s = tick_s
        self.depth_interval_s = depth_interval_s
        self.quote_interval_s = quote_interval_s
        self.max_rate = max_rate
        #: With `max_rate`: pace the pre-encoded frames at this many trades/s per symbol
        #: (None: as fast as the socket drains).
        self.max_rate_trades_per_s = max_rate_trades_per_s
        #: (monotonic start, first id per symbol) of the paced sender's shared sequence.
        self.paced_origin: tuple[float, dict[str, int]] | None = None
        self.replay = Replay(Path(replay), replay_speed) if replay is not None else None
        self.coinbase_levels = coinbase_levels
        self.heartbeat_s = heartbeat_s
        #: Levels per side of the OKX and Deribit books (their snapshots and diffs).
        self.book_levels = book_levels
        #: Deribit test_request every this many seconds instead of the interval asked for.
        self.deribit_heartbeat_s = deribit_heartbeat_s
        #: While True, live sessions send nothing and their trade cursors stand still.
        self.paused = False
        #: Set once a replay has sent its last frame.
        self.replay_done = self.replay.done if self.replay else threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> WsSimulator:
        if self._thread is not None:
            return self
        if self.replay is not None:
            self.replay.load()
        self._thread = threading.Thread(target=self._thread_main, name="ws-simulator", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise RuntimeError("websocket simulator failed to start") from self._error
        return self

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(10)
        self._thread = None

    def __enter__(self) -> WsSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL (``ws://127.0.0.1:<port>``); Binance streams are under ``/stream``."""
        return f"ws://{self.host}:{self.port}"

    @property
    def coinbase_url(self) -> str:
        return f"{self.url}/coinbase"

    @property
    def okx_url(self) -> str:
        return f"{self.url}{OKX_PATH}"

    @property
    def deribit_url(self) -> str:
        return f"{self.url}{DERIBIT_PATH}"

    def drop_all(self) -> None:
        """Cut every open connection now (abruptly), from any thread."""
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._abort_all)

    def _abort_all(self) -> None:
        if self._server is not None:
            for connection in list(self._server.connections):
                self.stats.drops += 1
                connection.transport.abort()

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # surfaced by start()
            self._error = error
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(
            self._handle,
            self.host,
            self.port,
            compression=None,
            max_size=1 << 20,
            process_request=self._process_request,
            ping_interval=20,
        ) as server:
            self._server = server
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()
            server.close(close_connections=False)
            self._abort_all()
            for task in list(self._handlers):
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if self.replay is not None or path in (
            "/stream",
            "/coinbase",
            "/ws",
            OKX_PATH,
            DERIBIT_PATH,
        ):
            return None
        return connection.respond(HTTPStatus.NOT_FOUND, f"no websocket at {path}\n")

    async def _handle(self, ws: ServerConnection) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        self.stats.connections += 1
        try:
            split = urlsplit(ws.request.path if ws.request else "/")
            if self.replay is not None:
                await self.replay.serve(ws, self.stats)
            elif split.path == "/coinbase":
                await CoinbaseSession(self, ws).run()
            elif split.path == OKX_PATH:
                okx = OkxSession(self, ws)
                await okx.run(partial(send_max_rate_okx, okx) if self.max_rate else None)
            elif split.path == DERIBIT_PATH:
                deribit = DeribitSession(self, ws)
                await deribit.run(
                    partial(send_max_rate_deribit, deribit) if self.max_rate else None
                )
            else:
                query = parse_qs(split.query)
                streams = [s for s in query.get("streams", [""])[0].split("/") if s]
                time_unit = query.get("timeUnit", [""])[0]
                session = BinanceSession(self, ws, streams, time_unit)
                await session.run(self._max_rate_sender(session) if self.max_rate else None)
        except (ConnectionClosed, asyncio.CancelledError):
            pass
        finally:
            if task is not None:
                self._handlers.discard(task)

    def _max_rate_sender(self, session: BinanceSession) -> Callable[[], Awaitable[None]]:
        rate = self.max_rate_trades_per_s
        if rate is None:
            return partial(send_max_rate, session)
        return partial(send_paced, session, rate)

    def now_us(self) -> int:
        return data.to_us(self.clock())
