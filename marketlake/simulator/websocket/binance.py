"""Binance's combined streams (`/stream?streams=btcusdt@trade/btcusdt@bookTicker/...`).

Trades, bookTicker and depth<N>@100ms per subscribed symbol, plus the SUBSCRIBE /
UNSUBSCRIBE / LIST_SUBSCRIPTIONS control messages. Binance's limits are enforced: at most
1024 streams and 5 incoming messages per second per connection. `timeUnit=MICROSECOND` on
the URL gives times in µs, and the `serverShutdown` fault announces a maintenance close.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

import orjson
from websockets.asyncio.server import ServerConnection

from marketlake.simulator import book, data
from marketlake.simulator.websocket.session import Session, trade_time_us

if TYPE_CHECKING:
    from marketlake.simulator.websocket.server import WsSimulator

MAX_STREAMS: Final = 1024
MAX_INCOMING_PER_S: Final = 5


def wire(value: float) -> str:
    """Binance's fixed 8-decimal text for prices and quantities."""
    return f"{value:.8f}"


class BinanceSession(Session):
    """Binance combined streams: trade, bookTicker and depth<N> per symbol, on one socket."""

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

    async def run(self, sender: Callable[[], Awaitable[None]] | None = None) -> None:
        """Answer control messages while `sender` (the live market by default) writes."""
        if self.error:
            await self.ws.close(1008, self.error)
            return
        await self.while_reading(sender or self._live)

    async def read(self) -> None:
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
                    quote = book.quote_at(symbol, now, self.cfg)
                    if quote.update_id > last_quote.get(symbol, 0) and not stalled:
                        last_quote[symbol] = quote.update_id
                        await self.send(self.book_ticker_frame(name, symbol, quote))
                if "depth" in kinds and mono >= depth_due.get(symbol, 0):
                    depth_due[symbol] = mono + sim.depth_interval_s
                    if not stalled:
                        await self.send(
                            self.depth_frame(name, symbol, book.depth_at(symbol, now, self.cfg))
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
        ts_us = trade_time_us(time_value)
        trade_time = ts_us if self.microseconds else ts_us // 1000
        frame = orjson.dumps(
            {
                "stream": f"{name}@trade",
                "data": {
                    "e": "trade",
                    "E": trade_time,
                    "s": symbol,
                    "t": trade_id,
                    "p": wire(price),
                    "q": wire(qty),
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
        await self._bogus(name, symbol, trade_id, trade_time, price, qty)

    async def _bogus(
        self, name: str, symbol: str, trade_id: int, trade_time: int, price: float, qty: float
    ) -> None:
        """Send the pending bogus trade of `symbol`, if any: the real one's values, a far id."""
        pending = self.faults.bogus_trades
        jump = next((j for s, j in pending if s == symbol), None)
        if jump is None:
            return
        pending.remove((symbol, jump))
        bogus_id = trade_id + jump
        self.sim.stats.bogus.setdefault(symbol, []).append(bogus_id)
        data = {"e": "trade", "E": trade_time, "s": symbol, "t": bogus_id, "p": wire(price)}
        data |= {"q": wire(qty), "T": trade_time, "m": False, "M": True}
        await self.send(orjson.dumps({"stream": f"{name}@trade", "data": data}))

    @staticmethod
    def book_ticker_frame(name: str, symbol: str, quote: book.Quote) -> bytes:
        return orjson.dumps(
            {
                "stream": f"{name}@bookTicker",
                "data": {
                    "u": quote.update_id,
                    "s": symbol,
                    "b": wire(quote.bid_price),
                    "B": wire(quote.bid_qty),
                    "a": wire(quote.ask_price),
                    "A": wire(quote.ask_qty),
                },
            }
        )

    def depth_frame(self, name: str, symbol: str, depth: book.Depth) -> bytes:
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
                        [wire(p), wire(q)]
                        for p, q in zip(
                            depth.bid_prices[:levels], depth.bid_qtys[:levels], strict=True
                        )
                    ],
                    "asks": [
                        [wire(p), wire(q)]
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
