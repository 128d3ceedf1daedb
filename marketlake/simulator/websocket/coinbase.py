"""Coinbase Advanced Trade (`/coinbase`): everything on one connection, one sequence_num.

Subscriptions are per channel: market_trades (with its snapshot of the last 100 trades),
ticker, level2 (a snapshot, then absolute-size updates against the last book sent) and
heartbeats. Prices and sizes are Coinbase's shortest decimal text, times RFC 3339 in µs.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import TYPE_CHECKING, Any, Final

import orjson
from websockets.asyncio.server import ServerConnection

from marketlake.simulator import book, data
from marketlake.simulator.websocket.session import Session, trade_time_us

if TYPE_CHECKING:
    from marketlake.simulator.websocket.server import WsSimulator

#: Trades in the market_trades snapshot sent on subscribing.
SNAPSHOT_TRADES: Final = 100


def number(value: float) -> str:
    """Coinbase's decimal text: 8 decimals at most, no trailing zeros (`"0.001"`, `"5"`)."""
    return f"{value:.8f}".rstrip("0").rstrip(".")


def rfc3339(epoch_us: int) -> str:
    seconds, micros = divmod(epoch_us, 1_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{micros:06d}Z"


class CoinbaseSession(Session):
    """Coinbase Advanced Trade: everything on one connection, one sequence_num."""

    def __init__(self, sim: WsSimulator, ws: ServerConnection) -> None:
        super().__init__(sim, ws)
        self.sequence = 0
        self.channels: dict[str, list[str]] = {}
        self.requests: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.books: dict[str, dict[tuple[str, float], float]] = {}

    async def run(self) -> None:
        await self.while_reading(self._live)

    async def read(self) -> None:
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
                "timestamp": rfc3339(self.sim.now_us()),
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
        ts_us = trade_time_us(time_value)
        return {
            "product_id": product,
            "trade_id": str(trade_id),
            "price": number(price),
            "size": number(qty),
            "time": rfc3339(ts_us),
            # Coinbase sends the maker's side: a buyer-maker trade is "BUY".
            "side": "BUY" if is_buyer_maker else "SELL",
        }

    async def _ticker(self, product: str, now: int, kind: str) -> None:
        quote = book.quote_at(product, now, self.cfg)
        mid = (quote.bid_price + quote.ask_price) / 2
        ticker = {
            "type": "ticker",
            "product_id": product,
            "price": number(round(mid, 2)),
            "volume_24_h": "0",
            "low_24_h": "0",
            "high_24_h": "0",
            "low_52_w": "0",
            "high_52_w": "0",
            "price_percent_chg_24_h": "0",
            "best_bid": number(quote.bid_price),
            "best_ask": number(quote.ask_price),
            "best_bid_quantity": number(quote.bid_qty),
            "best_ask_quantity": number(quote.ask_qty),
        }
        await self.emit({"events": [{"type": kind, "tickers": [ticker]}]}, channel="ticker")

    async def _level2(self, product: str, now: int, *, snapshot: bool) -> None:
        depth = book.depth_at(product, now, self.cfg, levels=self.sim.coinbase_levels)
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
        stamp = rfc3339(now)
        updates = [
            {
                "side": side,
                "event_time": stamp,
                "price_level": number(price),
                "new_quantity": number(qty),
            }
            for (side, price), qty in levels.items()
            if previous.get((side, price)) != qty
        ]
        updates += [
            {
                "side": side,
                "event_time": stamp,
                "price_level": number(price),
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
                    {"events": [{"current_time": rfc3339(now), "heartbeat_counter": next(beats)}]},
                    channel="heartbeats",
                )

    def bad_frame(self, n: int) -> bytes:
        product = next(iter(self.channels.get("market_trades", ["BTC-USD"])), "BTC-USD")
        good = {
            "product_id": product,
            "trade_id": "1",
            "price": "1",
            "size": "1",
            "time": rfc3339(self.sim.now_us()),
            "side": "BUY",
        }
        frame = {"channel": "market_trades", "timestamp": rfc3339(self.sim.now_us())}
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
