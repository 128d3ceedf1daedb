"""OKX v5 public websocket (``/ws/v5/public``): trades, bbo-tbt, books; ping/pong.

Requests are ``{"op": "subscribe" | "unsubscribe", "args": [{"channel", "instId"}]}``,
answered per argument with ``{"event": "subscribe", "arg": {...}}`` (or ``error`` with OKX's
code 60018 for a channel it does not have); the text ``ping`` is answered ``pong``. Pushes
have the shapes of the recorded session in ``tests/data/real/okx``, plus the ``seqId`` and
``prevSeqId`` OKX added to ``books`` since:

- ``trades``: one push per trade, ``tradeId`` the universe's id (the archive's), ``side``
  the taker's (``sell`` when the buyer was the maker);
- ``bbo-tbt``: the best level whenever it changed, ``seqId`` the book's update id;
- ``books``: a snapshot of `WsSimulator.book_levels` levels on subscribing, then every
  ``depth_interval_s`` the levels that changed (`l2`), each with the CRC32 of the top 25
  levels of the book it leaves, in the text sent. Faults: a dropped update, a spoiled
  checksum (`WsFaults.drop_book_updates`, `bad_book_checksums`), a dropped connection.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import TYPE_CHECKING, Any, Final

import orjson
from websockets.asyncio.server import ServerConnection

from marketlake.simulator import book
from marketlake.simulator.websocket.l2 import SentBook, best_first, changes, levels_at, number
from marketlake.simulator.websocket.session import TickedSession, trade_time_us

if TYPE_CHECKING:
    from marketlake.simulator.websocket.server import WsSimulator

CHANNELS: Final = ("trades", "bbo-tbt", "books")
CHECKSUM_LEVELS: Final = 25


def okx_checksum(bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> int:
    """OKX's signed CRC32 of ``bidPx:bidSz:askPx:askSz:...`` over the best 25 of each side."""
    parts: list[str] = []
    for i in range(CHECKSUM_LEVELS):
        if i < len(bids):
            parts += (number(bids[i][0]), number(bids[i][1]))
        if i < len(asks):
            parts += (number(asks[i][0]), number(asks[i][1]))
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def book_level(price: float, size: float) -> list[str]:
    """``[px, sz, "0", orderCount]``: OKX's deprecated third field is always "0"."""
    orders = "0" if size == 0.0 else str(1 + int(size * 1e5) % 7)
    return [number(price), number(size), "0", orders]


class OkxSession(TickedSession):
    """One OKX public connection: its subscriptions per channel and what it sent of books."""

    def __init__(self, sim: WsSimulator, ws: ServerConnection) -> None:
        super().__init__(sim, ws)
        self.subscribed: dict[str, list[str]] = {channel: [] for channel in CHANNELS}
        self.requests: asyncio.Queue[str | bytes] = asyncio.Queue()
        self.books: dict[str, SentBook] = {}
        self.last_quote: dict[str, int] = {}

    async def read(self) -> None:
        async for message in self.ws:
            await self.requests.put(message)

    async def answer(self, message: str | bytes) -> None:
        if message in ("ping", b"ping"):
            await self.ws.send("pong")
            return
        try:
            request = orjson.loads(message)
            op, args = request["op"], request["args"]
            if op not in ("subscribe", "unsubscribe") or type(args) is not list:
                raise ValueError(op)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            body = {"event": "error", "code": "60012", "msg": f"Invalid request: {message!s:.200}"}
            await self.ws.send(orjson.dumps(body), text=True)
            return
        now = self.sim.now_us()
        for arg in args:
            channel = arg.get("channel") if type(arg) is dict else None
            inst = arg.get("instId") if type(arg) is dict else None
            if channel not in CHANNELS or type(inst) is not str:
                msg = f"Wrong URL or channel:{channel}, instId:{inst} doesn't exist"
                body = {"event": "error", "code": "60018", "msg": msg}
                await self.ws.send(orjson.dumps(body), text=True)
                continue
            subscribed = self.subscribed[channel]
            if op == "subscribe":
                if inst not in subscribed:
                    subscribed.append(inst)
                if channel == "trades":
                    self.new_trades(inst, now)  # the cursor starts now
                elif channel == "books":
                    self.books[inst] = SentBook()
            else:
                if inst in subscribed:
                    subscribed.remove(inst)
                if channel == "books":
                    self.books.pop(inst, None)
            body = {"event": op, "arg": {"channel": channel, "instId": inst}}
            await self.ws.send(orjson.dumps(body), text=True)

    async def send_trades(self, now_us: int, stalled: bool) -> None:
        for inst in self.subscribed["trades"]:
            await self._trades(inst, now_us, stalled)

    async def send_quotes(self, t_us: int) -> None:
        for inst in self.subscribed["bbo-tbt"]:
            await self._bbo(inst, t_us)

    async def send_books(self, t_us: int) -> None:
        for inst in self.subscribed["books"]:
            await self._book(inst, t_us)

    async def _trades(self, inst: str, now: int, stalled: bool) -> None:
        trades = self.new_trades(inst, now)
        if trades is None:
            return
        for trade_id, price, qty, _quote, time_value, is_buyer_maker, _best in trades.iter_rows():
            if stalled or self.skip(trade_id):
                self.sim.stats.skipped(inst, trade_id)
                continue
            item = {
                "instId": inst,
                "tradeId": str(trade_id),
                "px": number(price),
                "sz": number(qty),
                "side": "sell" if is_buyer_maker else "buy",
                "ts": str(trade_time_us(time_value) // 1000),
            }
            push = {"arg": {"channel": "trades", "instId": inst}, "data": [item]}
            await self.send(orjson.dumps(push), text=True)
            self.sim.stats.sent(inst, trade_id)

    async def _bbo(self, inst: str, t_us: int) -> None:
        quote = book.quote_at(inst, t_us, self.cfg)
        if quote.update_id <= self.last_quote.get(inst, 0):
            return
        self.last_quote[inst] = quote.update_id
        item = {
            "asks": [book_level(quote.ask_price, quote.ask_qty)],
            "bids": [book_level(quote.bid_price, quote.bid_qty)],
            "ts": str(t_us // 1000),
            "seqId": quote.update_id,
        }
        push = {"arg": {"channel": "bbo-tbt", "instId": inst}, "data": [item]}
        await self.send(orjson.dumps(push), text=True)

    async def _book(self, inst: str, t_us: int) -> None:
        sent = self.books.get(inst)
        if sent is None:
            return
        bids, asks = levels_at(inst, t_us, self.cfg, self.sim.book_levels)
        seq_id = int(book.update_id_at(inst, t_us))
        stats, faults = self.sim.stats, self.faults
        if sent.snapshot_due:
            action = "snapshot"
            bid_levels = [(p, q) for p, q in best_first(bids, True)]
            ask_levels = [(p, q) for p, q in best_first(asks, False)]
            prev_seq_id = -1
            stats.book_snapshots += 1
        else:
            bid_levels = [(p, q) for p, q, _new in changes(sent.bids, bids, True)]
            ask_levels = [(p, q) for p, q, _new in changes(sent.asks, asks, False)]
            if (not bid_levels and not ask_levels) or seq_id <= sent.sequence:
                return
            action, prev_seq_id = "update", sent.sequence
            stats.book_updates += 1
        sent.bids, sent.asks, sent.sequence, sent.snapshot_due = bids, asks, seq_id, False
        if action == "update" and faults.take("drop_book_updates"):
            stats.book_updates_dropped += 1
            return
        checksum = okx_checksum(best_first(bids, True), best_first(asks, False))
        if action == "update" and faults.take("bad_book_checksums"):
            stats.bad_checksums_sent += 1
            checksum = checksum + 1 if checksum < (1 << 31) - 1 else checksum - 1
        item = {
            "asks": [book_level(p, q) for p, q in ask_levels],
            "bids": [book_level(p, q) for p, q in bid_levels],
            "ts": str(t_us // 1000),
            "checksum": checksum,
            "prevSeqId": prev_seq_id,
            "seqId": seq_id,
        }
        push = {"arg": {"channel": "books", "instId": inst}, "action": action, "data": [item]}
        await self.send(orjson.dumps(push), text=True)

    def bad_frame(self, n: int) -> bytes:
        inst = next(iter(self.subscribed["trades"]), "BTC-USDT")
        good = {"instId": inst, "tradeId": "1", "px": "1", "sz": "1", "side": "buy"}
        good["ts"] = str(self.sim.now_us() // 1000)
        arg = {"channel": "trades", "instId": inst}
        kinds: list[Any] = [
            b'{"arg":{"channel":"trades","instId":"' + inst.encode() + b'"},"data":[',
            {"arg": arg, "data": [{**good, "px": "-1"}]},
            {"arg": arg, "data": [{k: v for k, v in good.items() if k != "sz"}]},
            {"arg": {"channel": "trades", "instId": "ZZZ-USDT"}, "data": [good]},
            {"arg": {"channel": "candle1m", "instId": inst}, "data": []},
        ]
        kind = kinds[n % len(kinds)]
        return kind if isinstance(kind, bytes) else orjson.dumps(kind)
