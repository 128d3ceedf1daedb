"""Binance spot combined streams: ``{ws}/stream?streams=<symbol>@trade/<symbol>@bookTicker/...``.

Field mapping (Binance "WebSocket Streams for Binance", spot; checked against the recorded
frames in ``tests/data/real/binance_ws``):

- ``<symbol>@trade``: ``t`` trade id, ``p`` price, ``q`` quantity, ``T`` trade time,
  ``m`` "is the buyer the market maker". ``ts`` = ``T``. Connections ask for
  ``timeUnit=MICROSECOND`` (documented for spot streams) so live times are as exact as the
  archive's since 2025; the unit of each value is still detected by magnitude, never assumed.
  No quote quantity is sent; the lander derives it as ``round(price * qty, 8)``, which is
  what the archive's column holds.
- ``<symbol>@bookTicker``: ``u`` book update id, ``s``, ``b``/``B`` best bid price/qty,
  ``a``/``A`` best ask. The spot stream carries no event time, so ``ts`` is the receive time.
- ``<symbol>@depth<N>[@100ms]`` (partial book): ``lastUpdateId``, ``bids``, ``asks`` as
  ``[price, qty]`` string pairs, best first. No ``E`` and no ``s``: the symbol comes from the
  stream name and ``ts`` is the receive time.
- ``!serverShutdown`` (``{"e": "serverShutdown"}``): the server is going away; the connection is
  rolled over (replacement first) rather than waiting for the cut.

Connection limits (Binance "WebSocket Limits"): at most 1024 streams per connection, 5
incoming control messages (ping, pong, subscribe) per second, 300 connection attempts per 5
minutes per IP, and every connection is cut at 24 hours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import orjson

from marketlake.exchanges.feed import (
    INFINITY,
    Depth,
    GapFiller,
    Parser,
    Quote,
    Record,
    Resync,
    Shard,
    Trade,
    json_object,
    payload_text,
    positive,
    reject,
)
from marketlake.exchanges.fields import Refused, decimal, field
from marketlake.schemas import normalize_symbol

#: Streams opened per symbol unless told otherwise.
DEFAULT_CHANNELS: Final = ("trade", "bookTicker", "depth20@100ms")
MAX_STREAMS_PER_CONNECTION: Final = 1024
MAX_URL_LENGTH: Final = 4000
SUBSCRIBE_CHUNK: Final = 100
_MICROSECONDS_FROM: Final = 100_000_000_000_000  # a 15-digit epoch value is already µs


@dataclass(frozen=True)
class BinanceFeed:
    """Binance spot as a `marketlake.exchanges.feed.Feed`."""

    channels: tuple[str, ...] = DEFAULT_CHANNELS
    max_streams_per_connection: int = MAX_STREAMS_PER_CONNECTION
    #: Streams beyond what fits in a URL this long are sent as SUBSCRIBE messages instead.
    max_url_length: int = MAX_URL_LENGTH
    #: ``timeUnit`` URL parameter (``MICROSECOND`` or None for Binance's default, ms).
    time_unit: str | None = "MICROSECOND"
    exchange: str = "binance"
    trade_ids_contiguous: bool = True
    book_ids_monotonic: bool = True
    max_connection_age_s: float | None = 24 * 3600.0
    control_messages_per_s: float = 4.0  # the limit is 5; keep one in hand for pongs
    max_frame_bytes: int = 1 << 20
    silence_timeout_s: float = 30.0

    def normalize_symbol(self, symbol: str) -> str:
        return normalize_symbol(symbol, "binance")

    def streams(self, symbol: str) -> list[str]:
        lower = self.normalize_symbol(symbol).lower()
        return [f"{lower}@{channel}" for channel in self.channels]

    def shards(self, ws_url: str, symbols: Sequence[str]) -> list[Shard]:
        """Symbols packed into connections of at most `max_streams_per_connection` streams.

        A symbol's streams never straddle two connections, so each connection can be dropped
        and replaced without losing half a symbol.
        """
        per_symbol = len(self.channels)
        if per_symbol > self.max_streams_per_connection:
            raise ValueError("more channels per symbol than streams per connection")
        per_connection = self.max_streams_per_connection // per_symbol
        normalized = [self.normalize_symbol(s) for s in symbols]
        return [
            self._shard(ws_url, tuple(normalized[i : i + per_connection]))
            for i in range(0, len(normalized), per_connection)
        ]

    def _shard(self, ws_url: str, symbols: tuple[str, ...]) -> Shard:
        streams = [stream for symbol in symbols for stream in self.streams(symbol)]
        base = f"{ws_url.rstrip('/')}/stream?"
        if self.time_unit:
            base += f"timeUnit={self.time_unit}&"
        base += "streams="
        in_url: list[str] = []
        length = len(base)
        for stream in streams:
            if in_url and length + len(stream) + 1 > self.max_url_length:
                break
            in_url.append(stream)
            length += len(stream) + 1
        rest = streams[len(in_url) :]
        subscribe = tuple(
            orjson.dumps(
                {
                    "method": "SUBSCRIBE",
                    "params": rest[i : i + SUBSCRIBE_CHUNK],
                    "id": i // SUBSCRIBE_CHUNK + 1,
                }
            )
            for i in range(0, len(rest), SUBSCRIBE_CHUNK)
        )
        return Shard(base + "/".join(in_url), symbols, subscribe)

    def parser(self, symbols: Sequence[str]) -> Parser:
        return BinanceParser(self.normalize_symbol(s) for s in symbols)

    def gap_filler(
        self, rest_url: str | None, *, weight_limit: int, budget: object | None = None
    ) -> GapFiller | None:
        """`BinanceRest` (historicalTrades by id), sharing ``budget`` (a `WeightBudget`)."""
        if rest_url is None:
            return None
        from marketlake.exchanges.binance.rest import BinanceRest

        return BinanceRest(rest_url, weight_limit=weight_limit, budget=budget)  # type: ignore[arg-type]


def _ts_us(value: int) -> int:
    return value if value >= _MICROSECONDS_FROM else value * 1000


class BinanceParser:
    """Parses combined-stream envelopes ``{"stream": ..., "data": {...}}``; stateless per frame.

    Every refusal names the field and the problem, so `quarantine` can be grouped by reason.
    """

    def __init__(self, symbols: Sequence[str] | object) -> None:
        self._symbols: frozenset[str] = frozenset(symbols)  # type: ignore[arg-type]
        self._routes: dict[str, tuple[str | None, str | None]] = {}

    def parse(self, raw: bytes | str, received_at_us: int) -> list[Record]:
        message = json_object(raw)
        if type(message) is str:
            return [reject(message, raw, received_at_us)]
        stream = message.get("stream")
        data = message.get("data")
        if type(stream) is not str or type(data) is not dict:
            if "result" in message and "id" in message:
                return []  # the answer to a SUBSCRIBE
            if "error" in message:
                return [reject(f"exchange error: {message['error']}", raw, received_at_us)]
            return [reject("not a combined-stream envelope", raw, received_at_us)]
        route = self._routes.get(stream) or self._route(stream)
        kind, symbol = route
        if kind is None and stream == "!serverShutdown":
            return [Resync("server shutdown announced", rollover=True)]
        if kind is None:
            reason = f"unknown stream {stream[:64]!r}"
            return [
                reject(reason, raw, received_at_us, symbol if symbol in self._symbols else None)
            ]
        if symbol not in self._symbols:
            return [reject(f"symbol not subscribed: {symbol}", raw, received_at_us, symbol)]
        try:
            if kind == "trade":
                record = _trade(symbol, data, received_at_us)
            elif kind == "bookTicker":
                record = _book_ticker(symbol, data, received_at_us)
            else:
                record = _depth(symbol, data, received_at_us)
        except Refused as refused:
            return [reject(str(refused), raw, received_at_us, symbol)]
        return [record]

    def _route(self, stream: str) -> tuple[str | None, str | None]:
        """(kind, symbol) of a stream name; kind None for a stream this feed doesn't land."""
        name, _, channel = stream.partition("@")
        kind: str | None = None
        if channel == "trade" or channel == "bookTicker":
            kind = channel
        elif channel.startswith("depth") and channel[5:].split("@")[0] in ("5", "10", "20"):
            kind = "depth"
        try:
            symbol: str | None = normalize_symbol(name, "binance")
        except ValueError:
            return None, None
        if kind is None:
            return None, symbol
        if len(self._routes) < 8192:
            self._routes[stream] = (kind, symbol)  # type: ignore[assignment]
        return kind, symbol


def _check_symbol(data: dict, symbol: str) -> None:
    sent = data.get("s")
    if sent is not None and sent != symbol:
        raise Refused(f"symbol {payload_text(str(sent))[:32]!r} does not match stream {symbol}")


def _trade(symbol: str, data: dict, received_at_us: int) -> Trade:
    """The hot path: one pass of type checks; any doubt goes to `_checked_trade` for a reason."""
    get = data.get
    trade_id, price_text, qty_text = get("t"), get("p"), get("q")
    trade_time, is_buyer_maker, sent = get("T"), get("m"), get("s")
    if (
        type(trade_id) is int
        and type(price_text) is str
        and type(qty_text) is str
        and type(trade_time) is int
        and type(is_buyer_maker) is bool
        and (sent is None or sent == symbol)
        and trade_id >= 0
    ):
        try:
            price, qty = float(price_text), float(qty_text)
        except ValueError:
            pass
        else:
            if 0.0 < price < INFINITY and 0.0 < qty < INFINITY:
                ts_us = trade_time if trade_time >= _MICROSECONDS_FROM else trade_time * 1000
                return Trade(symbol, trade_id, price, qty, ts_us, is_buyer_maker, received_at_us)
    return _checked_trade(symbol, data, received_at_us)


def _checked_trade(symbol: str, data: dict, received_at_us: int) -> Trade:
    trade_id = field(data, "t", int)
    price = decimal(data, "p")
    qty = decimal(data, "q")
    trade_time = field(data, "T", int)
    is_buyer_maker = field(data, "m", bool)
    _check_symbol(data, symbol)
    if trade_id < 0:  # type: ignore[operator]
        raise Refused("negative trade id")
    if not positive(price):
        raise Refused("non-positive price")
    if not positive(qty):
        raise Refused("non-positive qty")
    return Trade(
        symbol,
        trade_id,  # type: ignore[arg-type]
        price,
        qty,
        _ts_us(trade_time),  # type: ignore[arg-type]
        is_buyer_maker,  # type: ignore[arg-type]
        received_at_us,
    )


def _book_ticker(symbol: str, data: dict, received_at_us: int) -> Quote:
    """The hot path, like `_trade`; `_checked_book_ticker` names what is wrong."""
    get = data.get
    update_id, sent = get("u"), get("s")
    texts = (get("b"), get("B"), get("a"), get("A"))
    if (
        type(update_id) is int
        and (sent is None or sent == symbol)
        and all(type(text) is str for text in texts)
    ):
        try:
            bid_price, bid_qty, ask_price, ask_qty = map(float, texts)  # type: ignore[arg-type]
        except ValueError:
            pass
        else:
            if (
                0.0 < bid_price < INFINITY
                and 0.0 < bid_qty < INFINITY
                and 0.0 < ask_price < INFINITY
                and 0.0 < ask_qty < INFINITY
            ):
                return Quote(
                    symbol,
                    received_at_us,
                    received_at_us,
                    update_id,
                    bid_price,
                    bid_qty,
                    ask_price,
                    ask_qty,
                )
    return _checked_book_ticker(symbol, data, received_at_us)


def _checked_book_ticker(symbol: str, data: dict, received_at_us: int) -> Quote:
    update_id = field(data, "u", int)
    bid_price = decimal(data, "b")
    bid_qty = decimal(data, "B")
    ask_price = decimal(data, "a")
    ask_qty = decimal(data, "A")
    _check_symbol(data, symbol)
    if not (positive(bid_price) and positive(ask_price)):
        raise Refused("non-positive price")
    if not (positive(bid_qty) and positive(ask_qty)):
        raise Refused("non-positive qty")
    return Quote(
        symbol,
        received_at_us,
        received_at_us,
        update_id,  # type: ignore[arg-type]
        bid_price,
        bid_qty,
        ask_price,
        ask_qty,
    )


def _levels(data: dict, key: str) -> tuple[list[float], list[float]]:
    """Price and quantity lists of ``[[price, qty], ...]``, every value finite and > 0."""
    levels = field(data, key, list)
    try:
        prices = [float(price) for price, _ in levels]  # type: ignore[attr-defined]
        qtys = [float(qty) for _, qty in levels]  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise Refused(f"mistyped field {key!r}: expected [price, qty] pairs") from None
    if prices:
        total = sum(prices) + sum(qtys)  # NaN anywhere makes this NaN
        if not (
            min(prices) > 0.0
            and min(qtys) > 0.0
            and max(prices) < INFINITY
            and max(qtys) < INFINITY
            and total == total
        ):
            raise Refused(f"non-positive level in {key!r}")
    return prices, qtys


def _depth(symbol: str, data: dict, received_at_us: int) -> Depth:
    last_update_id = field(data, "lastUpdateId", int)
    bid_prices, bid_qtys = _levels(data, "bids")
    ask_prices, ask_qtys = _levels(data, "asks")
    return Depth(
        symbol,
        received_at_us,
        received_at_us,
        last_update_id,  # type: ignore[arg-type]
        bid_prices,
        bid_qtys,
        ask_prices,
        ask_qtys,
    )
