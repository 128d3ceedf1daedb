"""The simulator's websocket side: Binance combined streams, Coinbase Advanced Trade, replay.

`WsSimulator` serves, on loopback:

- ``/stream?streams=btcusdt@trade/btcusdt@bookTicker/btcusdt@depth20@100ms`` (Binance
  combined streams, plus SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS messages). Trades are
  the **same deterministic universe** the archive and REST serve (`simulator.data`): every
  tick the connection sends the trades whose time has passed on the simulator clock, so a
  gap fill from REST can be checked against ground truth. bookTicker and depth20 come from
  the same book model (`data.quotes_at`, `data.depth_at`), so quotes agree with trade prices.
  Binance's limits are enforced: at most 1024 streams and 5 incoming messages per second
  per connection.
- ``/coinbase``: Coinbase Advanced Trade (subscribe per channel; market_trades with its
  snapshot of the last 100 trades, ticker, level2 snapshot + absolute-size updates,
  heartbeats; one ``sequence_num`` per connection).
- **max rate** (``max_rate=True``): pre-encoded Binance frames for every subscribed stream
  written straight to the socket as fast as it drains, for throughput benchmarks.
- **replay** (``replay=path``): the frames of a recording (`exchanges.recording.read_recording`:
  the lander's capture format and the real-sample formats) at the recorded pace times
  ``replay_speed`` (None: as fast as possible), on any path. Connections share one cursor,
  like a live stream: a reconnect continues where the last connection stopped.

Fault knobs (`WsFaults`, changeable while running): drop every connection after N s, never
send some trade ids, send malformed frames, stall, send duplicates.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from marketlake.exchanges.recording import Recorded, read_recording
from marketlake.simulator import data

Clock = Callable[[], dt.datetime]

MAX_STREAMS: Final = 1024
MAX_INCOMING_PER_S: Final = 5
SNAPSHOT_TRADES: Final = 100
_DEFAULT_CONFIG: Final = data.SimConfig()


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class WsFaults:
    """What the websocket side gets wrong; all off by default, changeable while running."""

    #: Cut every connection this many seconds after it opened (abruptly, no close frame).
    drop_every_s: float | None = None
    #: Trade ids never sent (the trades still happen: REST and the archive have them).
    skip_trade_ids: set[int] = field(default_factory=set)
    #: Never send trades whose id is a multiple of this.
    skip_every: int | None = None
    #: After every N-th frame, send one malformed frame (cycling through kinds of bad input).
    malformed_every: int | None = None
    #: Per connection: after this many seconds, send nothing for ``stall_for_s`` (the trades
    #: of the stall are lost, the socket stays open).
    stall_after_s: float | None = None
    stall_for_s: float = 0.0
    #: Send every trade whose id is a multiple of this twice.
    duplicate_every: int | None = None
    #: Binance: announce ``serverShutdown`` this many seconds after a connection opened, then
    #: close it ``shutdown_grace_s`` later (as the real server does before maintenance).
    server_shutdown_after_s: float | None = None
    shutdown_grace_s: float = 2.0


@dataclass
class WsStats:
    connections: int = 0
    frames: int = 0
    malformed: int = 0
    drops: int = 0
    refused: int = 0
    #: symbol -> trade ids sent (the ground truth of "what the stream delivered")
    sent_trade_ids: dict[str, set[int]] = field(default_factory=dict)
    skipped_trade_ids: dict[str, set[int]] = field(default_factory=dict)

    def sent(self, symbol: str, trade_id: int) -> None:
        self.sent_trade_ids.setdefault(symbol, set()).add(trade_id)

    def skipped(self, symbol: str, trade_id: int) -> None:
        self.skipped_trade_ids.setdefault(symbol, set()).add(trade_id)


def _wire(value: float) -> str:
    return f"{value:.8f}"


def _coinbase_number(value: float) -> str:
    return f"{value:.8f}".rstrip("0").rstrip(".")


def _rfc3339(epoch_us: int) -> str:
    seconds, micros = divmod(epoch_us, 1_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{micros:06d}Z"


def raw_frame(payload: bytes) -> bytes:
    """An unmasked server text frame (RFC 6455) around ``payload``, for the max-rate mode."""
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload


class WsSimulator:
    """A websocket exchange on loopback; a context manager like `simulator.Simulator`."""

    def __init__(
        self,
        config: data.SimConfig = _DEFAULT_CONFIG,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        faults: WsFaults | None = None,
        tick_s: float = 0.01,
        depth_interval_s: float = 0.1,
        quote_interval_s: float = 0.1,
        max_rate: bool = False,
        replay: Path | str | None = None,
        replay_speed: float | None = 1.0,
        coinbase_levels: int = 50,
        heartbeat_s: float = 1.0,
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
        self.replay_path = Path(replay) if replay is not None else None
        self.replay_speed = replay_speed
        self.coinbase_levels = coinbase_levels
        self.heartbeat_s = heartbeat_s
        #: While True, live sessions send nothing and their trade cursors stand still.
        self.paused = False
        self.replay_done = threading.Event()
        self._replay_frames: list[Recorded] = []
        self._replay_index = 0
        self._replay_lock: asyncio.Lock | None = None
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
        if self.replay_path is not None:
            self._replay_frames = list(read_recording(self.replay_path))
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
        self._replay_lock = asyncio.Lock()
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
        if self.replay_path is not None or path in ("/stream", "/coinbase", "/ws"):
            return None
        return connection.respond(HTTPStatus.NOT_FOUND, f"no websocket at {path}\n")

    async def _handle(self, ws: ServerConnection) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        self.stats.connections += 1
        try:
            split = urlsplit(ws.request.path if ws.request else "/")
            if self.replay_path is not None:
                await self._replay(ws)
            elif split.path == "/coinbase":
                await _CoinbaseSession(self, ws).run()
            else:
                query = parse_qs(split.query)
                streams = [s for s in query.get("streams", [""])[0].split("/") if s]
                time_unit = query.get("timeUnit", [""])[0]
                await _BinanceSession(self, ws, streams, time_unit).run()
        except (ConnectionClosed, asyncio.CancelledError):
            pass
        finally:
            if task is not None:
                self._handlers.discard(task)

    def now_us(self) -> int:
        return data.to_us(self.clock())

    # --- replay -------------------------------------------------------------------------------

    async def _replay(self, ws: ServerConnection) -> None:
        assert self._replay_lock is not None
        async with self._replay_lock:  # one reader of the shared cursor at a time
            frames = self._replay_frames
            started = time.monotonic()
            origin: int | None = None
            while self._replay_index < len(frames):
                recorded = frames[self._replay_index]
                if self.replay_speed and recorded.received_at_us is not None:
                    if origin is None:
                        origin = recorded.received_at_us
                        started = time.monotonic()
                    due = started + (recorded.received_at_us - origin) / 1e6 / self.replay_speed
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                await ws.send(recorded.raw)
                self.stats.frames += 1
                self._replay_index += 1
            self.replay_done.set()
        await ws.wait_closed()


class _Session:
    """What Binance and Coinbase sessions share: faults, trade cursors, the send counter."""

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

    async def send(self, payload: bytes | str) -> None:
        await self.ws.send(payload)
        self.sim.stats.frames += 1
        self.sent += 1
        every = self.faults.malformed_every
        if every and self.sent % every == 0:
            self.sim.stats.malformed += 1
            await self.ws.send(self.bad_frame(next(self.malformed)))

    def bad_frame(self, n: int) -> bytes:
        raise NotImplementedError

    def new_trades(self, symbol: str, now_us: int) -> Any:
        """The trades of ``symbol`` that happened since the last call (a TRADE_SCHEMA frame)."""
        last = data.last_trade_id_at(symbol, now_us, self.cfg)
        previous = self.cursor.get(symbol)
        self.cursor[symbol] = last
        if previous is None or last <= previous:
            return None
        return data.trades_between_ids(symbol, previous + 1, last, self.cfg)


# --- Binance ----------------------------------------------------------------------------------


class _BinanceSession(_Session):
    def __init__(
        self, sim: WsSimulator, ws: ServerConnection, streams: Sequence[str], time_unit: str = ""
    ) -> None:
        super().__init__(sim, ws)
        #: ``timeUnit=MICROSECOND`` on the URL: times in µs instead of ms
        self.microseconds = time_unit.upper() == "MICROSECOND"
        self.announced = False
        self.streams: list[str] = []
        self.incoming: list[float] = []
        self.error: str | None = None
        self._add(streams)

    def _add(self, streams: Sequence[str]) -> None:
        for stream in streams:
            if stream not in self.streams:
                self.streams.append(stream)
        if len(self.streams) > MAX_STREAMS:
            self.error = f"too many streams: {len(self.streams)} > {MAX_STREAMS}"

    def subscriptions(self) -> dict[str, tuple[str, set[str]]]:
        """symbol (upper) -> (lower-case name, channel kinds)."""
        out: dict[str, tuple[str, set[str]]] = {}
        for stream in self.streams:
            name, _, channel = stream.partition("@")
            kind = "depth" if channel.startswith("depth") else channel
            out.setdefault(name.upper(), (name, set()))[1].add(kind)
        return out

    async def run(self) -> None:
        if self.error:
            await self.ws.close(1008, self.error)
            return
        reader = asyncio.create_task(self._read())
        try:
            if self.sim.max_rate:
                await self._max_rate()
            else:
                await self._live()
        finally:
            reader.cancel()

    async def _read(self) -> None:
        """Control messages: SUBSCRIBE etc., refused above Binance's 5 per second."""
        async for message in self.ws:
            now = time.monotonic()
            self.incoming = [t for t in self.incoming if now - t < 1.0] + [now]
            if len(self.incoming) > MAX_INCOMING_PER_S:
                self.sim.stats.refused += 1
                await self.ws.close(1008, "too many messages")
                return
            try:
                request = orjson.loads(message)
                method, ident = request.get("method"), request.get("id")
                params = request.get("params") or []
            except (orjson.JSONDecodeError, AttributeError):
                await self.ws.send(orjson.dumps({"error": {"code": 3, "msg": "Invalid JSON"}}))
                continue
            if method == "SUBSCRIBE":
                self._add(params)
                if self.error:
                    await self.ws.close(1008, self.error)
                    return
                await self.ws.send(orjson.dumps({"result": None, "id": ident}))
            elif method == "UNSUBSCRIBE":
                self.streams = [s for s in self.streams if s not in params]
                await self.ws.send(orjson.dumps({"result": None, "id": ident}))
            elif method == "LIST_SUBSCRIPTIONS":
                await self.ws.send(orjson.dumps({"result": self.streams, "id": ident}))
            else:
                await self.ws.send(
                    orjson.dumps({"error": {"code": 2, "msg": "Invalid request"}, "id": ident})
                )

    async def _live(self) -> None:
        sim = self.sim
        now = sim.now_us()
        for symbol in self.subscriptions():
            self.cursor[symbol] = data.last_trade_id_at(symbol, now, self.cfg)
        last_quote: dict[str, int] = {}
        quote_due: dict[str, float] = {}
        depth_due: dict[str, float] = {}
        while True:
            await asyncio.sleep(sim.tick_s)
            if sim.paused:
                continue
            if self.dropping() or await self._shutting_down():
                return
            now = sim.now_us()
            stalled = self.stalled()
            mono = time.monotonic()
            for symbol, (name, kinds) in self.subscriptions().items():
                trades = self.new_trades(symbol, now)
                if "trade" in kinds and trades is not None:
                    for row in trades.iter_rows():
                        await self._trade(name, symbol, row, stalled)
                if "bookTicker" in kinds and (
                    trades is not None or mono >= quote_due.get(symbol, 0)
                ):
                    quote_due[symbol] = mono + sim.quote_interval_s
                    quote = data.quote_at(symbol, now, self.cfg)
                    if quote.update_id > last_quote.get(symbol, 0) and not stalled:
                        last_quote[symbol] = quote.update_id
                        await self.send(self._book_ticker(name, symbol, quote))
                if "depth" in kinds and mono >= depth_due.get(symbol, 0):
                    depth_due[symbol] = mono + sim.depth_interval_s
                    if not stalled:
                        await self.send(
                            self._depth(name, symbol, data.depth_at(symbol, now, self.cfg))
                        )

    async def _shutting_down(self) -> bool:
        """Announce serverShutdown once, then close after the grace (True once closed)."""
        after = self.faults.server_shutdown_after_s
        if after is None:
            return False
        age = time.monotonic() - self.opened
        if not self.announced and age >= after:
            self.announced = True
            notice = {"e": "serverShutdown", "E": self.sim.now_us() // 1000}
            await self.ws.send(orjson.dumps({"stream": "!serverShutdown", "data": notice}))
        if self.announced and age >= after + self.faults.shutdown_grace_s:
            await self.ws.close(1001, "server shutdown")
            return True
        return False

    async def _trade(self, name: str, symbol: str, row: tuple, stalled: bool) -> None:
        trade_id, price, qty, _quote, time_value, is_buyer_maker, _best = row
        if stalled or self.skip(trade_id):
            self.sim.stats.skipped(symbol, trade_id)
            return
        ts_us = time_value if time_value >= 10**14 else time_value * 1000
        trade_time = ts_us if self.microseconds else ts_us // 1000
        frame = orjson.dumps(
            {
                "stream": f"{name}@trade",
                "data": {
                    "e": "trade",
                    "E": trade_time,
                    "s": symbol,
                    "t": trade_id,
                    "p": _wire(price),
                    "q": _wire(qty),
                    "T": trade_time,
                    "m": is_buyer_maker,
                    "M": True,
                },
            }
        )
        await self.send(frame)
        self.sim.stats.sent(symbol, trade_id)
        if self.duplicate(trade_id):
            await self.send(frame)

    @staticmethod
    def _book_ticker(name: str, symbol: str, quote: data.Quote) -> bytes:
        return orjson.dumps(
            {
                "stream": f"{name}@bookTicker",
                "data": {
                    "u": quote.update_id,
                    "s": symbol,
                    "b": _wire(quote.bid_price),
                    "B": _wire(quote.bid_qty),
                    "a": _wire(quote.ask_price),
                    "A": _wire(quote.ask_qty),
                },
            }
        )

    def _depth(self, name: str, symbol: str, depth: data.Depth) -> bytes:
        stream = next(
            (s for s in self.streams if s.startswith(f"{name}@depth")), f"{name}@depth20@100ms"
        )
        levels = int(stream.split("@")[1][5:] or 20)
        return orjson.dumps(
            {
                "stream": stream,
                "data": {
                    "lastUpdateId": depth.update_id,
                    "bids": [
                        [_wire(p), _wire(q)]
                        for p, q in zip(
                            depth.bid_prices[:levels], depth.bid_qtys[:levels], strict=True
                        )
                    ],
                    "asks": [
                        [_wire(p), _wire(q)]
                        for p, q in zip(
                            depth.ask_prices[:levels], depth.ask_qtys[:levels], strict=True
                        )
                    ],
                },
            }
        )

    def bad_frame(self, n: int) -> bytes:
        name = next(iter(self.subscriptions().values()), ("btcusdt", set()))[0]
        symbol = name.upper()
        good = {
            "e": "trade",
            "E": 1,
            "s": symbol,
            "t": 1,
            "p": "1.00000000",
            "q": "1.00000000",
            "T": 1,
            "m": True,
            "M": True,
        }
        kinds: list[Any] = [
            b'{"stream":"' + name.encode() + b'@trade","data":{"e":"trade",',  # cut short
            {"stream": f"{name}@trade", "data": {**good, "p": "-5.00000000"}},
            {"stream": f"{name}@trade", "data": {k: v for k, v in good.items() if k != "q"}},
            {"stream": f"{name}@trade", "data": {**good, "t": "abc"}},
            {"stream": f"{name}@kline_1m", "data": {"e": "kline"}},
            {"stream": "zzzzusdt@trade", "data": {**good, "s": "ZZZZUSDT"}},
        ]
        kind = kinds[n % len(kinds)]
        return kind if isinstance(kind, bytes) else orjson.dumps(kind)

    async def _max_rate(self) -> None:
        """Pre-encoded frames for all subscribed streams, written as fast as the socket drains.

        Trade ids continue the universe's sequence from now and stay contiguous; prices
        and sizes repeat (the benchmark measures landing, not the market).
        """
        subs = self.subscriptions()
        transport = self.ws.transport
        now = self.sim.now_us()
        per_symbol = []
        for symbol, (name, kinds) in subs.items():
            quote = data.quote_at(symbol, now, self.cfg)
            depth = self._depth(name, symbol, data.depth_at(symbol, now, self.cfg))
            head, _, tail = depth.partition(b'"lastUpdateId":')
            tail = tail[tail.index(b",") :]
            per_symbol.append(
                (
                    symbol,
                    kinds,
                    data.last_trade_id_at(symbol, now, self.cfg) + 1,
                    (
                        b'{"stream":"%s@trade","data":{"e":"trade","E":%%d,"s":"%s","t":%%d,'
                        b'"p":"%s","q":"0.00100000","T":%%d,"m":%%s,"M":true}}'
                        % (name.encode(), symbol.encode(), _wire(quote.ask_price).encode())
                    ),
                    (
                        b'{"stream":"%s@bookTicker","data":{"u":%%d,"s":"%s","b":"%s","B":"%s",'
                        b'"a":"%s","A":"%s"}}'
                        % (
                            name.encode(),
                            symbol.encode(),
                            _wire(quote.bid_price).encode(),
                            _wire(quote.bid_qty).encode(),
                            _wire(quote.ask_price).encode(),
                            _wire(quote.ask_qty).encode(),
                        )
                    ),
                    head + b'"lastUpdateId":%d' + tail,
                    quote.update_id,
                )
            )
        ids = {symbol: first for symbol, _, first, *_ in per_symbol}
        update_ids = {entry[0]: entry[6] for entry in per_symbol}
        frames_per_chunk = 600
        counter = 0
        while True:
            if transport.is_closing():
                return
            if transport.get_write_buffer_size() > 1 << 20:
                await asyncio.sleep(0.0005)
                continue
            ms = time.time_ns() // 1_000_000
            chunk: list[bytes] = []
            while len(chunk) < frames_per_chunk:
                for symbol, kinds, _first, trade, ticker, depth, _u in per_symbol:
                    counter += 1
                    if "trade" in kinds:
                        trade_id = ids[symbol]
                        ids[symbol] = trade_id + 1
                        chunk.append(
                            raw_frame(
                                trade % (ms, trade_id, ms, b"true" if trade_id & 1 else b"false")
                            )
                        )
                    update_ids[symbol] += 1
                    if "bookTicker" in kinds:
                        chunk.append(raw_frame(ticker % update_ids[symbol]))
                    if "depth" in kinds and counter % 10 == 0:
                        chunk.append(raw_frame(depth % update_ids[symbol]))
            if transport.is_closing():
                return
            try:
                transport.write(b"".join(chunk))
            except RuntimeError:  # the client closed while the chunk was being built
                return
            self.sim.stats.frames += len(chunk)
            await asyncio.sleep(0)


# --- Coinbase ---------------------------------------------------------------------------------


class _CoinbaseSession(_Session):
    """Coinbase Advanced Trade: everything on one connection, one sequence_num."""

    def __init__(self, sim: WsSimulator, ws: ServerConnection) -> None:
        super().__init__(sim, ws)
        self.sequence = 0
        self.channels: dict[str, list[str]] = {}
        self.requests: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.books: dict[str, dict[tuple[str, float], float]] = {}

    async def run(self) -> None:
        reader = asyncio.create_task(self._read())
        try:
            await self._live()
        finally:
            reader.cancel()

    async def _read(self) -> None:
        async for message in self.ws:
            try:
                request = orjson.loads(message)
            except orjson.JSONDecodeError:
                await self.emit({"type": "error", "message": "failure to parse JSON"}, framed=False)
                continue
            await self.requests.put(request)

    async def emit(self, body: dict[str, Any], *, framed: bool = True, channel: str = "") -> None:
        if framed:
            body = {
                "channel": channel,
                "client_id": "",
                "timestamp": _rfc3339(self.sim.now_us()),
                "sequence_num": self.sequence,
                **body,
            }
            self.sequence += 1
        await self.send(orjson.dumps(body))

    async def _subscribe(self, request: dict[str, Any]) -> None:
        channel = request.get("channel")
        products = [p for p in request.get("product_ids", []) if isinstance(p, str)]
        if request.get("type") != "subscribe" or not isinstance(channel, str):
            await self.emit({"type": "error", "message": "invalid request"}, framed=False)
            return
        subscribed = self.channels.setdefault(channel, [])
        subscribed.extend(p for p in products if p not in subscribed)
        await self.emit(
            {"events": [{"subscriptions": {name: list(p) for name, p in self.channels.items()}}]},
            channel="subscriptions",
        )
        now = self.sim.now_us()
        for product in products:
            if channel == "market_trades":
                recent = data.trades_until(product, now, self.cfg, SNAPSHOT_TRADES)
                self.cursor[product] = data.last_trade_id_at(product, now, self.cfg)
                rows = [r for r in reversed(recent.rows()) if not self.skip(r[0])]
                await self.emit(
                    {
                        "events": [
                            {"type": "snapshot", "trades": [self._trade(product, r) for r in rows]}
                        ]
                    },
                    channel="market_trades",
                )
            elif channel == "ticker":
                await self._ticker(product, now, "snapshot")
            elif channel == "level2":
                await self._level2(product, now, snapshot=True)

    @staticmethod
    def _trade(product: str, row: tuple) -> dict[str, Any]:
        trade_id, price, qty, _quote, time_value, is_buyer_maker, _best = row
        ts_us = time_value if time_value >= 10**14 else time_value * 1000
        return {
            "product_id": product,
            "trade_id": str(trade_id),
            "price": _coinbase_number(price),
            "size": _coinbase_number(qty),
            "time": _rfc3339(ts_us),
            # Coinbase sends the maker's side: a buyer-maker trade is "BUY".
            "side": "BUY" if is_buyer_maker else "SELL",
        }

    async def _ticker(self, product: str, now: int, kind: str) -> None:
        quote = data.quote_at(product, now, self.cfg)
        mid = (quote.bid_price + quote.ask_price) / 2
        ticker = {
            "type": "ticker",
            "product_id": product,
            "price": _coinbase_number(round(mid, 2)),
            "volume_24_h": "0",
            "low_24_h": "0",
            "high_24_h": "0",
            "low_52_w": "0",
            "high_52_w": "0",
            "price_percent_chg_24_h": "0",
            "best_bid": _coinbase_number(quote.bid_price),
            "best_ask": _coinbase_number(quote.ask_price),
            "best_bid_quantity": _coinbase_number(quote.bid_qty),
            "best_ask_quantity": _coinbase_number(quote.ask_qty),
        }
        await self.emit({"events": [{"type": kind, "tickers": [ticker]}]}, channel="ticker")

    async def _level2(self, product: str, now: int, *, snapshot: bool) -> None:
        depth = data.depth_at(product, now, self.cfg, levels=self.sim.coinbase_levels)
        levels = {
            ("bid", float(p)): float(q)
            for p, q in zip(depth.bid_prices, depth.bid_qtys, strict=True)
        }
        levels.update(
            {
                ("offer", float(p)): float(q)
                for p, q in zip(depth.ask_prices, depth.ask_qtys, strict=True)
            }
        )
        previous = {} if snapshot else self.books.get(product, {})
        self.books[product] = levels
        stamp = _rfc3339(now)
        updates = [
            {
                "side": side,
                "event_time": stamp,
                "price_level": _coinbase_number(price),
                "new_quantity": _coinbase_number(qty),
            }
            for (side, price), qty in levels.items()
            if previous.get((side, price)) != qty
        ]
        updates += [
            {
                "side": side,
                "event_time": stamp,
                "price_level": _coinbase_number(price),
                "new_quantity": "0",
            }
            for (side, price) in previous
            if (side, price) not in levels
        ]
        if updates or snapshot:
            kind = "snapshot" if snapshot else "update"
            await self.emit(
                {"events": [{"type": kind, "product_id": product, "updates": updates}]},
                channel="l2_data",
            )

    async def _live(self) -> None:
        sim = self.sim
        depth_due = 0.0
        quote_due = 0.0
        heartbeat_due = 0.0
        beats = itertools.count()
        while True:
            await asyncio.sleep(sim.tick_s)
            while not self.requests.empty():
                await self._subscribe(self.requests.get_nowait())
            if sim.paused:
                continue
            if self.dropping():
                return
            if self.stalled():
                for product in self.channels.get("market_trades", []):
                    trades = self.new_trades(product, sim.now_us())
                    for row in trades.iter_rows() if trades is not None else ():
                        sim.stats.skipped(product, row[0])
                continue
            now = sim.now_us()
            mono = time.monotonic()
            for product in self.channels.get("market_trades", []):
                trades = self.new_trades(product, now)
                if trades is None:
                    continue
                rows = []
                for row in trades.iter_rows():
                    if self.skip(row[0]):
                        sim.stats.skipped(product, row[0])
                    else:
                        rows.append(row)
                        sim.stats.sent(product, row[0])
                if rows:
                    body = {
                        "events": [
                            {
                                "type": "update",
                                "trades": [self._trade(product, r) for r in reversed(rows)],
                            }
                        ]
                    }
                    await self.emit(body, channel="market_trades")
            if mono >= quote_due:
                quote_due = mono + sim.quote_interval_s
                for product in self.channels.get("ticker", []):
                    await self._ticker(product, now, "update")
            if mono >= depth_due:
                depth_due = mono + sim.depth_interval_s
                for product in self.channels.get("level2", []):
                    await self._level2(product, now, snapshot=False)
            if "heartbeats" in self.channels and mono >= heartbeat_due:
                heartbeat_due = mono + sim.heartbeat_s
                await self.emit(
                    {"events": [{"current_time": _rfc3339(now), "heartbeat_counter": next(beats)}]},
                    channel="heartbeats",
                )

    def bad_frame(self, n: int) -> bytes:
        product = next(iter(self.channels.get("market_trades", ["BTC-USD"])), "BTC-USD")
        good = {
            "product_id": product,
            "trade_id": "1",
            "price": "1",
            "size": "1",
            "time": _rfc3339(self.sim.now_us()),
            "side": "BUY",
        }
        frame = {"channel": "market_trades", "timestamp": _rfc3339(self.sim.now_us())}
        kinds: list[Any] = [
            b'{"channel":"market_trades","events":[',
            {**frame, "events": [{"type": "update", "trades": [{**good, "price": "-1"}]}]},
            {
                **frame,
                "events": [
                    {"type": "update", "trades": [{k: v for k, v in good.items() if k != "size"}]}
                ],
            },
            {
                **frame,
                "events": [{"type": "update", "trades": [{**good, "product_id": "ZZZ-USD"}]}],
            },
            {**frame, "channel": "candles", "events": []},
        ]
        kind = kinds[n % len(kinds)]
        return kind if isinstance(kind, bytes) else orjson.dumps(kind)


# --- command line -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m marketlake.simulator.websocket``: serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9443)
    parser.add_argument("--trades-per-day", type=int, default=data.SimConfig.trades_per_day)
    parser.add_argument("--seed", type=int, default=data.SimConfig.seed)
    parser.add_argument("--max-rate", action="store_true", help="push pre-encoded frames flat out")
    parser.add_argument("--replay", type=Path, default=None, help="serve a recording instead")
    parser.add_argument("--replay-speed", type=float, default=1.0, help="0 = as fast as possible")
    args = parser.parse_args(argv)
    config = data.SimConfig(seed=args.seed, trades_per_day=args.trades_per_day)
    sim = WsSimulator(
        config,
        host=args.host,
        port=args.port,
        max_rate=args.max_rate,
        replay=args.replay,
        replay_speed=args.replay_speed or None,
    )
    with sim:
        print(
            f"websocket simulator at {sim.url} "
            f"(Binance: {sim.url}/stream, Coinbase: {sim.coinbase_url})",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
