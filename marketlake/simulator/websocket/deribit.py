"""Deribit v2 JSON-RPC over websocket (``/ws/api/v2``): trades, quotes, raw books, heartbeats.

Requests are ``{"jsonrpc": "2.0", "id", "method", "params"}``; replies carry ``result`` (or
``error``) and ``usIn``/``usOut``/``usDiff``/``testnet`` as in ``tests/data/real/deribit``.
Methods: ``public/subscribe`` and ``public/unsubscribe`` (``params.channels``; the result
lists the channels taken), ``public/set_heartbeat`` (interval >= 10 s) and ``public/test``.
Pushes are ``{"jsonrpc": "2.0", "method": "subscription", "params": {"channel", "data"}}``:

- ``trades.{instrument}.raw``: a list of trades, ``trade_seq`` the universe's trade id (+1
  per instrument), ``direction`` the taker's side;
- ``quote.{instrument}``: the best bid/ask whenever it changed;
- ``book.{instrument}.raw``: a snapshot on subscribing (``change_id``, no
  ``prev_change_id``), then the changed levels ``[new|change|delete, price, amount]`` with
  ``prev_change_id`` = the previous push's ``change_id`` (`l2`). Fault: a dropped change
  (`WsFaults.drop_book_updates`).

After ``public/set_heartbeat`` a ``test_request`` heartbeat goes out every interval (or every
`WsSimulator.deribit_heartbeat_s`, so a test need not wait Deribit's 10 s minimum); one left
unanswered by ``public/test`` when the next is due closes the connection, as Deribit does.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Final

import orjson
from websockets.asyncio.server import ServerConnection

from marketlake.exchanges.deribit.websocket import channel_route
from marketlake.simulator import book
from marketlake.simulator.websocket.l2 import SentBook, best_first, changes, levels_at
from marketlake.simulator.websocket.session import TickedSession, trade_time_us

if TYPE_CHECKING:
    from marketlake.simulator.websocket.server import WsSimulator

KINDS: Final = ("trades", "quote", "book")
_VERSION: Final = {"version": "1.2.26"}


def trade_item(
    inst: str, trade_id: int, price: float, qty: float, time_value: int, is_buyer_maker: bool
) -> dict[str, Any]:
    """A universe trade as Deribit sends it, on the websocket and in its REST history alike."""
    return {
        "timestamp": trade_time_us(time_value) // 1000,
        "price": price,
        "amount": qty,
        "direction": "sell" if is_buyer_maker else "buy",
        "index_price": price,
        "instrument_name": inst,
        "trade_seq": trade_id,
        "mark_price": price,
        "tick_direction": 0 if is_buyer_maker else 2,
        "trade_id": str(trade_id),
    }


class DeribitSession(TickedSession):
    """One Deribit connection: channels by kind, books sent, the heartbeat it asked for."""

    def __init__(self, sim: WsSimulator, ws: ServerConnection) -> None:
        super().__init__(sim, ws)
        self.channels: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}  # inst->channel
        self.requests: asyncio.Queue[tuple[int, str | bytes]] = asyncio.Queue()
        self.books: dict[str, SentBook] = {}
        self.last_quote: dict[str, int] = {}
        self.heartbeat_s: float | None = None
        self.heartbeat_due = 0.0
        self.unanswered = False

    async def read(self) -> None:
        async for message in self.ws:
            await self.requests.put((time.time_ns() // 1000, message))

    async def _reply(self, request_id: object, us_in: int, **body: Any) -> None:
        us_out = time.time_ns() // 1000
        reply = {"jsonrpc": "2.0", "id": request_id, **body}
        reply |= {"usIn": us_in, "usOut": us_out, "usDiff": us_out - us_in, "testnet": False}
        await self.ws.send(orjson.dumps(reply), text=True)

    async def answer(self, request: tuple[int, str | bytes]) -> None:
        """One request as it was received: (receive time in µs, frame)."""
        us_in, message = request
        try:
            request = orjson.loads(message)
            method, request_id = request["method"], request.get("id")
            params = request.get("params") or {}
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            error = {"code": -32700, "message": "parse_error"}
            await self._reply(None, us_in, error=error)
            return
        if method in ("public/subscribe", "public/unsubscribe"):
            channels = params.get("channels") if type(params) is dict else None
            taken = [c for c in channels or [] if type(c) is str and channel_route(c) is not None]
            for channel in taken:
                kind, inst = channel_route(channel)  # type: ignore[misc]
                if method == "public/subscribe":
                    self._subscribe(kind, inst, channel)
                else:
                    self.channels[kind].pop(inst, None)
                    if kind == "book":
                        self.books.pop(inst, None)
            await self._reply(request_id, us_in, result=taken)
        elif method == "public/set_heartbeat":
            interval = params.get("interval") if type(params) is dict else None
            if type(interval) not in (int, float) or interval < 10:
                error = {"code": 11029, "message": "invalid_arguments"}
                await self._reply(request_id, us_in, error=error)
                return
            self.heartbeat_s = self.sim.deribit_heartbeat_s or float(interval)
            self.heartbeat_due = time.monotonic() + self.heartbeat_s
            await self._reply(request_id, us_in, result="ok")
        elif method == "public/test":
            self.unanswered = False
            await self._reply(request_id, us_in, result=_VERSION)
        else:
            error = {"code": -32601, "message": "Method not found"}
            await self._reply(request_id, us_in, error=error)

    def _subscribe(self, kind: str, inst: str, channel: str) -> None:
        self.channels[kind][inst] = channel
        if kind == "trades":
            self.new_trades(inst, self.sim.now_us())  # the cursor starts now
        elif kind == "book":
            self.books[inst] = SentBook()

    async def closing(self) -> bool:
        return self.dropping() or await self._heartbeat()

    async def send_trades(self, now_us: int, stalled: bool) -> None:
        for inst, channel in list(self.channels["trades"].items()):
            await self._trades(inst, channel, now_us, stalled)

    async def send_quotes(self, t_us: int) -> None:
        for inst, channel in list(self.channels["quote"].items()):
            await self._quote(inst, channel, t_us)

    async def send_books(self, t_us: int) -> None:
        for inst, channel in list(self.channels["book"].items()):
            await self._book(inst, channel, t_us)

    async def _heartbeat(self) -> bool:
        """Send a due test_request; True once the connection is closed for ignoring one."""
        if self.heartbeat_s is None or time.monotonic() < self.heartbeat_due:
            return False
        if self.unanswered:
            self.sim.stats.heartbeat_timeouts += 1
            await self.ws.close(1000, "heartbeat test_request not answered")
            return True
        self.heartbeat_due = time.monotonic() + self.heartbeat_s
        self.unanswered = True
        beat = {"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}}
        await self.ws.send(orjson.dumps(beat), text=True)
        return False

    async def _push(self, channel: str, data: object) -> None:
        message = {"jsonrpc": "2.0", "method": "subscription"}
        message["params"] = {"channel": channel, "data": data}  # type: ignore[assignment]
        await self.send(orjson.dumps(message), text=True)

    async def _trades(self, inst: str, channel: str, now: int, stalled: bool) -> None:
        trades = self.new_trades(inst, now)
        if trades is None:
            return
        items = []
        for trade_id, price, qty, _quote, time_value, is_buyer_maker, _best in trades.iter_rows():
            if stalled or self.skip(trade_id):
                self.sim.stats.skipped(inst, trade_id)
                continue
            items.append(trade_item(inst, trade_id, price, qty, time_value, is_buyer_maker))
            self.sim.stats.sent(inst, trade_id)
        if items:
            await self._push(channel, items)

    async def _quote(self, inst: str, channel: str, t_us: int) -> None:
        quote = book.quote_at(inst, t_us, self.cfg)
        if quote.update_id <= self.last_quote.get(inst, 0):
            return
        self.last_quote[inst] = quote.update_id
        data = {
            "timestamp": t_us // 1000,
            "instrument_name": inst,
            "best_ask_price": quote.ask_price,
            "best_bid_price": quote.bid_price,
            "best_ask_amount": quote.ask_qty,
            "best_bid_amount": quote.bid_qty,
        }
        await self._push(channel, data)

    async def _book(self, inst: str, channel: str, t_us: int) -> None:
        sent = self.books.get(inst)
        if sent is None:
            return
        bids, asks = levels_at(inst, t_us, self.cfg, self.sim.book_levels)
        change_id = int(book.update_id_at(inst, t_us))
        stats = self.sim.stats
        if sent.snapshot_due:
            data: dict[str, Any] = {"type": "snapshot", "timestamp": t_us // 1000}
            data |= {"instrument_name": inst, "change_id": change_id}
            data["bids"] = [["new", p, q] for p, q in best_first(bids, True)]
            data["asks"] = [["new", p, q] for p, q in best_first(asks, False)]
            stats.book_snapshots += 1
        else:
            bid_changes = changes(sent.bids, bids, True)
            ask_changes = changes(sent.asks, asks, False)
            if (not bid_changes and not ask_changes) or change_id <= sent.sequence:
                return
            data = {"type": "change", "timestamp": t_us // 1000, "prev_change_id": sent.sequence}
            data |= {"instrument_name": inst, "change_id": change_id}
            data["bids"] = [_action(level) for level in bid_changes]
            data["asks"] = [_action(level) for level in ask_changes]
            stats.book_updates += 1
        snapshot = sent.snapshot_due
        sent.bids, sent.asks, sent.sequence, sent.snapshot_due = bids, asks, change_id, False
        if not snapshot and self.faults.take("drop_book_updates"):
            stats.book_updates_dropped += 1
            return
        await self._push(channel, data)

    def bad_frame(self, n: int) -> bytes:
        inst, channel = next(iter(self.channels["trades"].items()), ("BTC-PERPETUAL", ""))
        channel = channel or f"trades.{inst}.raw"
        good = {"timestamp": self.sim.now_us() // 1000, "price": 1.0, "amount": 1.0}
        good |= {"direction": "buy", "instrument_name": inst, "trade_seq": 1, "trade_id": "1"}
        envelope = {"jsonrpc": "2.0", "method": "subscription"}
        kinds: list[Any] = [
            b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"',
            {**envelope, "params": {"channel": channel, "data": [{**good, "price": -1.0}]}},
            {**envelope, "params": {"channel": channel, "data": [{**good, "amount": "1"}]}},
            {**envelope, "params": {"channel": "trades.ZZZ-PERPETUAL.raw", "data": [good]}},
            {**envelope, "params": {"channel": f"ticker.{inst}.raw", "data": {}}},
        ]
        kind = kinds[n % len(kinds)]
        return kind if isinstance(kind, bytes) else orjson.dumps(kind)


def _action(level: tuple[float, float, bool]) -> list[object]:
    price, amount, new = level
    if amount == 0.0:
        return ["delete", price, 0.0]
    return ["new" if new else "change", price, amount]
