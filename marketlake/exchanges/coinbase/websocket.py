"""Coinbase Advanced Trade websocket (``wss://advanced-trade-ws.coinbase.com``).

Subscriptions are one message per channel: ``{"type": "subscribe", "product_ids": [...],
"channel": "market_trades"}``. Every frame is ``{"channel", "timestamp", "sequence_num",
"events": [...]}``; ``sequence_num`` counts every frame of the connection, so a jump means a
frame was lost and the level2 book can no longer be trusted (the parser asks for a resync).

Field mapping (Coinbase "Advanced Trade WebSocket channels"; checked against the recorded
frames in ``tests/data/real/coinbase_ws``):

- ``market_trades`` -> trades: ``trade_id`` (a decimal string; ids run +1 per product),
  ``price``, ``size``, ``time`` (RFC 3339, µs), ``side``. ``side`` is the **maker's** side, as
  on Coinbase Exchange ("the side field indicates the maker order side") and as Nautilus
  Trader reads it ("Coinbase reports the maker side on public market trades"). The recording
  agrees: trades printed at the best ask carry ``SELL`` and trades at the best bid ``BUY``. So
  ``is_buyer_maker = side == "BUY"``. A snapshot (the last trades, sent on subscribe) lists
  trades newest first; records are returned in trade id order.
- ``ticker`` (and ``ticker_batch``) -> quotes: ``best_bid``, ``best_bid_quantity``,
  ``best_ask``, ``best_ask_quantity``; ``ts`` is the frame's ``timestamp`` (ns, truncated to
  µs). There is no book update id: ``update_id`` is null.
- ``level2`` (frames arrive as channel ``l2_data``) -> a local book per product from the
  ``snapshot`` event plus ``update`` events (``new_quantity`` is the new size, not a delta;
  "0" removes the level; sides ``bid``/``offer``). A top-N snapshot goes to ``ticks_depth`` at
  most once per ``depth_interval_s`` per product; its ``ts`` is the ``event_time`` of the
  last update applied.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import orjson

from marketlake.exchanges.coinbase.book import Book
from marketlake.exchanges.feed import (
    Depth,
    GapFiller,
    Parser,
    Quote,
    Record,
    Reject,
    Resync,
    Shard,
    Trade,
    json_object,
    payload_text,
    per_connection,
    positive,
    reject,
)
from marketlake.exchanges.fields import Refused, decimal, field
from marketlake.schemas import normalize_symbol

DEFAULT_CHANNELS: Final = ("market_trades", "ticker", "level2", "heartbeats")
_IGNORED_CHANNELS: Final = frozenset({"heartbeats", "subscriptions"})
#: Message types of the retired Coinbase Pro / Exchange feed (ws-feed.*.coinbase.com).
_EXCHANGE_FEED_TYPES: Final = frozenset(
    {"match", "last_match", "l2update", "snapshot", "ticker", "subscriptions", "heartbeat"}
)

_RFC3339: Final = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z")
_EPOCH_ORDINAL: Final = dt.date(1970, 1, 1).toordinal()
_DAY_US: Final = 86_400_000_000
_day_cache: dict[str, int] = {}


def rfc3339_us(text: object) -> int:
    """``2026-08-09T21:05:48.228568804Z`` as epoch microseconds (digits past µs truncated).

    Strict on purpose: only the UTC ``Z`` form Coinbase sends, so a changed format is
    refused loudly instead of being misread.
    """
    if type(text) is not str:
        raise ValueError("timestamp is not a string")
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 UTC timestamp: {text[:40]!r}")
    day_text, hh, mm, ss, fraction = match.groups()
    day = _day_cache.get(day_text)
    if day is None:
        day = (dt.date.fromisoformat(day_text).toordinal() - _EPOCH_ORDINAL) * _DAY_US
        if len(_day_cache) < 4096:
            _day_cache[day_text] = day
    hours, minutes, seconds = int(hh), int(mm), int(ss)
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(f"time of day out of range: {text[:40]!r}")
    micros = int((fraction + "00000")[:6]) if fraction else 0
    return day + ((hours * 60 + minutes) * 60 + seconds) * 1_000_000 + micros


@dataclass(frozen=True)
class CoinbaseFeed:
    """Coinbase Advanced Trade as a `marketlake.exchanges.feed.Feed`."""

    channels: tuple[str, ...] = DEFAULT_CHANNELS
    max_products_per_connection: int = 50
    depth: int = 20
    depth_interval_s: float = 0.1
    exchange: str = "coinbase"
    trade_ids_contiguous: bool = True
    book_ids_monotonic: bool = False
    max_connection_age_s: float | None = None
    control_messages_per_s: float = 4.0  # unauthenticated clients: 8 messages/s per IP
    max_frame_bytes: int = 64 << 20  # a level2 snapshot of a busy product is several MB
    silence_timeout_s: float = 30.0  # heartbeats arrive every second

    def normalize_symbol(self, symbol: str) -> str:
        return normalize_symbol(symbol, "coinbase")

    def shards(self, ws_url: str, symbols: Sequence[str]) -> list[Shard]:
        products = [self.normalize_symbol(s) for s in symbols]
        return [
            self._shard(ws_url, chunk)
            for chunk in per_connection(products, self.max_products_per_connection)
        ]

    def _shard(self, ws_url: str, products: tuple[str, ...]) -> Shard:
        subscribe = tuple(
            orjson.dumps({"type": "subscribe", "product_ids": list(products), "channel": channel})
            for channel in self.channels
        )
        return Shard(ws_url, products, subscribe)

    def parser(self, symbols: Sequence[str]) -> Parser:
        return CoinbaseParser(
            [self.normalize_symbol(s) for s in symbols],
            depth=self.depth,
            depth_interval_us=round(self.depth_interval_s * 1_000_000),
        )

    def gap_filler(
        self, rest_url: str | None, *, weight_limit: int, budget: object | None = None
    ) -> GapFiller | None:
        """None: Coinbase's public REST API has no trades-by-id-range query.

        A gap is still recorded in `stream_events`; the market_trades snapshot sent on every
        (re)subscribe covers the last 100 trades, which closes most reconnect gaps by itself.
        """
        return None


def _text(item: dict, key: str) -> str:
    return field(item, key, str)  # type: ignore[return-value]


def _time(item: dict, key: str) -> int:
    try:
        return rfc3339_us(_text(item, key))
    except Refused:
        raise
    except ValueError:
        raise Refused(f"mistyped field {key!r}: not an RFC 3339 UTC time") from None


def _list(item: dict, key: str) -> list:
    value = item.get(key)
    if type(value) is not list:
        raise Refused(f"missing field {key!r}" if value is None else f"mistyped field {key!r}")
    return value


class CoinbaseParser:
    """Parses one connection's frames; keeps its books and its ``sequence_num``."""

    def __init__(
        self, products: Sequence[str], depth: int = 20, depth_interval_us: int = 100_000
    ) -> None:
        self._products = frozenset(products)
        self._depth = depth
        self._depth_interval_us = depth_interval_us
        self._books: dict[str, Book] = {}
        self._last_depth_us: dict[str, int] = {}
        self._sequence: int | None = None
        #: level2 updates seen before the product's snapshot (nothing to apply them to).
        self.updates_before_snapshot = 0

    def parse(self, raw: bytes | str, received_at_us: int) -> list[Record]:
        message = json_object(raw)
        if type(message) is str:
            return [reject(message, raw, received_at_us)]
        channel = message.get("channel")
        if type(channel) is not str:
            kind = message.get("type")
            if kind == "error":
                detail = payload_text(str(message.get("message", "")))[:200]
                return [reject(f"exchange error: {detail}", raw, received_at_us)]
            if type(kind) is str and kind in _EXCHANGE_FEED_TYPES:
                reason = f"Coinbase Exchange feed message ({kind}), not Advanced Trade"
                return [reject(reason, raw, received_at_us)]
            return [reject("missing field 'channel'", raw, received_at_us)]
        records: list[Record] = []
        sequence = message.get("sequence_num")
        resync: Resync | None = None
        if type(sequence) is int:
            if self._sequence is not None and sequence != self._sequence + 1:
                resync = Resync(f"sequence_num jumped from {self._sequence} to {sequence}")
                self._books.clear()  # a lost level2 frame leaves every book wrong
            self._sequence = sequence
        try:
            if channel in _IGNORED_CHANNELS:
                pass
            elif channel == "market_trades":
                self._trades(message, raw, received_at_us, records)
            elif channel == "ticker" or channel == "ticker_batch":
                self._tickers(message, raw, received_at_us, records)
            elif channel == "l2_data":
                self._level2(message, raw, received_at_us, records)
            else:
                records.append(reject(f"unsupported channel {channel[:32]!r}", raw, received_at_us))
        except Refused as refused:
            records.append(reject(str(refused), raw, received_at_us))
        if resync is not None:
            records.append(resync)
        return records

    def _product(self, item: dict) -> str:
        product = _text(item, "product_id")
        if product not in self._products:
            raise Refused(f"symbol not subscribed: {product[:32]}")
        return product

    def _item_reject(self, refused: Refused, item: object, received_at_us: int) -> Reject:
        product = item.get("product_id") if type(item) is dict else None
        symbol = product if type(product) is str and product in self._products else None
        return reject(str(refused), orjson.dumps(item), received_at_us, symbol)

    def _trades(self, message: dict, raw: bytes | str, received_at_us: int, out: list) -> None:
        trades: list[Trade] = []
        for event in _list(message, "events"):
            if type(event) is not dict:
                raise Refused("mistyped field 'events': expected objects")
            for item in _list(event, "trades"):
                try:
                    if type(item) is not dict:
                        raise Refused("mistyped field 'trades': expected objects")
                    trades.append(self._trade(item, received_at_us))
                except Refused as refused:
                    out.append(self._item_reject(refused, item, received_at_us))
        trades.sort(key=lambda trade: trade.trade_id)
        out.extend(trades)

    def _trade(self, item: dict, received_at_us: int) -> Trade:
        product = self._product(item)
        trade_id_text = _text(item, "trade_id")
        if not trade_id_text.isdigit():
            raise Refused("mistyped field 'trade_id': not an integer")
        price = decimal(item, "price")
        size = decimal(item, "size")
        ts_us = _time(item, "time")
        side = _text(item, "side")
        if side != "BUY" and side != "SELL":
            raise Refused(f"mistyped field 'side': {side[:16]!r}")
        if not positive(price):
            raise Refused("non-positive price")
        if not positive(size):
            raise Refused("non-positive qty")
        return Trade(product, int(trade_id_text), price, size, ts_us, side == "BUY", received_at_us)

    def _tickers(self, message: dict, raw: bytes | str, received_at_us: int, out: list) -> None:
        ts_us = _time(message, "timestamp")
        for event in _list(message, "events"):
            if type(event) is not dict:
                raise Refused("mistyped field 'events': expected objects")
            for item in _list(event, "tickers"):
                try:
                    if type(item) is not dict:
                        raise Refused("mistyped field 'tickers': expected objects")
                    out.append(self._quote(item, ts_us, received_at_us))
                except Refused as refused:
                    out.append(self._item_reject(refused, item, received_at_us))

    def _quote(self, item: dict, ts_us: int, received_at_us: int) -> Quote:
        product = self._product(item)
        bid_price = decimal(item, "best_bid")
        bid_qty = decimal(item, "best_bid_quantity")
        ask_price = decimal(item, "best_ask")
        ask_qty = decimal(item, "best_ask_quantity")
        if not (positive(bid_price) and positive(ask_price)):
            raise Refused("non-positive price")
        if not (positive(bid_qty) and positive(ask_qty)):
            raise Refused("non-positive qty")
        return Quote(product, ts_us, received_at_us, None, bid_price, bid_qty, ask_price, ask_qty)

    def _level2(self, message: dict, raw: bytes | str, received_at_us: int, out: list) -> None:
        for event in _list(message, "events"):
            if type(event) is not dict:
                raise Refused("mistyped field 'events': expected objects")
            try:
                product = self._product(event)
                kind = _text(event, "type")
                updates = _list(event, "updates")
            except Refused as refused:
                out.append(self._item_reject(refused, event, received_at_us))
                continue
            book = self._books.get(product)
            if kind == "snapshot":
                if book is None:
                    book = self._books[product] = Book()
                book.clear()
            elif kind != "update":
                out.append(
                    self._item_reject(Refused("mistyped field 'type'"), event, received_at_us)
                )
                continue
            elif book is None:
                self.updates_before_snapshot += 1
                continue
            ts_us = self._apply(book, updates, received_at_us, out)
            if ts_us is None:
                ts_us = _time(message, "timestamp")
            if (
                received_at_us - self._last_depth_us.get(product, -(1 << 62))
                >= self._depth_interval_us
            ):
                self._last_depth_us[product] = received_at_us
                bid_prices, bid_qtys = book.bids.top(self._depth)
                ask_prices, ask_qtys = book.asks.top(self._depth)
                out.append(
                    Depth(
                        product,
                        ts_us,
                        received_at_us,
                        None,
                        bid_prices,
                        bid_qtys,
                        ask_prices,
                        ask_qtys,
                    )
                )

    def _apply(self, book: Book, updates: list, received_at_us: int, out: list) -> int | None:
        """Apply level updates; the event time of the last good one (None if there was none)."""
        bids, asks = book.bids, book.asks
        last: dict | None = None
        for item in updates:
            try:
                if type(item) is not dict:
                    raise Refused("mistyped field 'updates': expected objects")
                side = item.get("side")
                price = decimal(item, "price_level")
                size = decimal(item, "new_quantity")
                if not positive(price):
                    raise Refused("non-positive price")
                if not (size == 0.0 or positive(size)):
                    raise Refused("negative qty")
                if side == "bid":
                    bids.set(price, size)
                elif side == "offer":
                    asks.set(price, size)
                else:
                    raise Refused("mistyped field 'side': expected bid or offer")
                last = item
            except Refused as refused:
                out.append(self._item_reject(refused, item, received_at_us))
        if last is None:
            return None
        try:
            return _time(last, "event_time")
        except Refused:
            return None
