"""Deribit v2 JSON-RPC websocket (``wss://www.deribit.com/ws/api/v2``): frames to records.

Pushes are ``{"jsonrpc": "2.0", "method": "subscription", "params": {"channel", "data"}}``;
answers to requests are ``{"jsonrpc", "id", "result" | "error", "usIn", "usOut", ...}``.
Values are JSON numbers; ``timestamp`` is epoch milliseconds.

Field mapping (Deribit API v2 docs; checked against ``tests/data/real/deribit``):

- ``trades.{instrument}.raw`` (or ``.100ms``) -> `Trade`, one per element of ``data``:
  ``trade_id`` is Deribit's ``trade_seq``, which runs +1 per instrument (``trade_id`` itself is
  a string such as ``"ETH-284830839"`` shared by every instrument of a currency, so it has
  holes and is kept out); ``price``; ``amount`` (USD for futures and perpetuals, the base coin
  for options); ``timestamp``; ``direction`` is the **taker's** side, so
  ``is_buyer_maker = direction == "sell"``.
- ``quote.{instrument}`` -> `Quote`: ``best_bid_price``/``best_bid_amount``,
  ``best_ask_price``/``best_ask_amount``, ``timestamp``; no update id.
- ``book.{instrument}.raw`` (or ``.100ms``) -> `Depth` (top 20, after every change while the
  chain holds) and
  `marketlake.exchanges.book.BookEvent`, see `marketlake.exchanges.deribit.books`.
- ``heartbeat``: after ``public/set_heartbeat`` Deribit sends ``{"method": "heartbeat",
  "params": {"type": "test_request"}}`` and closes the connection unless it gets a
  ``public/test`` request back: `heartbeat_reply` builds that answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import orjson

from marketlake.exchanges.book import DEPTH_LEVELS, BookEvent
from marketlake.exchanges.deribit.books import DeribitBooks, ms_us
from marketlake.exchanges.feed import (
    Quote,
    Record,
    Trade,
    json_object,
    payload_text,
    positive,
    reject,
)
from marketlake.exchanges.fields import Refused, field

CHANNELS: Final = ("trades.{}.raw", "quote.{}", "book.{}.raw")


def subscribe(instruments: Sequence[str], request_id: int = 1) -> bytes:
    """One ``public/subscribe`` request for every channel of every instrument."""
    channels = [pattern.format(inst) for inst in instruments for pattern in CHANNELS]
    return orjson.dumps(
        {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "public/subscribe",
            "params": {"channels": channels},
        }
    )


def set_heartbeat(interval_s: int, request_id: int = 0) -> bytes:
    """Ask Deribit for a ``test_request`` every ``interval_s`` seconds (10 at least)."""
    if interval_s < 10:
        raise ValueError(f"Deribit heartbeat interval must be at least 10 s, not {interval_s}")
    return orjson.dumps(
        {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "public/set_heartbeat",
            "params": {"interval": interval_s},
        }
    )


def heartbeat_reply(raw: bytes | str, request_id: int = 0) -> bytes | None:
    """The ``public/test`` request that answers a ``test_request`` heartbeat, else None."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not _is_test_request(message):
        return None
    return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": "public/test", "params": {}})


def _is_test_request(message: object) -> bool:
    if type(message) is not dict or message.get("method") != "heartbeat":
        return False
    params = message.get("params")
    return type(params) is dict and params.get("type") == "test_request"


def channel_route(channel: str) -> tuple[str, str] | None:
    """(kind, instrument) of a channel name, or None if it is not one of the channels landed
    (the simulator serves the same ones)."""
    parts = channel.split(".")
    if len(parts) == 3 and parts[0] in ("trades", "book") and parts[2] in ("raw", "100ms"):
        return parts[0], parts[1]
    if len(parts) == 2 and parts[0] == "quote":
        return "quote", parts[1]
    return None


class DeribitParser:
    """Parses one connection's frames; keeps its books.

    Returns `marketlake.exchanges.feed.Record` values plus `BookEvent` for the books'
    sync transitions (the lander writes those to ``stream_events``).
    """

    def __init__(self, instruments: Sequence[str], depth_levels: int = DEPTH_LEVELS) -> None:
        self._instruments = frozenset(instruments)
        self.books = DeribitBooks(depth_levels)
        #: ``test_request`` heartbeats seen (each must be answered with `heartbeat_reply`).
        self.test_requests = 0

    def parse(self, raw: bytes | str, received_at_us: int) -> list[Record | BookEvent]:
        message = json_object(raw)
        if type(message) is str:
            return [reject(message, raw, received_at_us)]
        method = message.get("method")
        if method != "subscription":
            return self._control(message, raw, received_at_us)
        params = message.get("params")
        if type(params) is not dict:
            return [reject("mistyped field 'params'", raw, received_at_us)]
        channel, data = params.get("channel"), params.get("data")
        if type(channel) is not str:
            return [reject("missing field 'channel'", raw, received_at_us)]
        route = channel_route(channel)
        if route is None:
            return [reject(f"unsupported channel {channel[:64]!r}", raw, received_at_us)]
        kind, instrument = route
        if instrument not in self._instruments:
            return [reject(f"symbol not subscribed: {instrument[:32]}", raw, received_at_us)]
        try:
            if kind == "book":
                if type(data) is not dict:
                    raise Refused("mistyped field 'data': expected an object")
                _check_instrument(data, instrument)
                return self.books.apply(instrument, data, received_at_us)  # type: ignore[return-value]
            if kind == "quote":
                if type(data) is not dict:
                    raise Refused("mistyped field 'data': expected an object")
                return [_quote(instrument, data, received_at_us)]
        except Refused as refused:
            out: list[Record | BookEvent] = [reject(str(refused), raw, received_at_us, instrument)]
            if kind == "book":
                event = self.books.refused(instrument, str(refused), received_at_us)
                if event is not None:
                    out.append(event)
            return out
        if type(data) is not list:
            return [reject("mistyped field 'data': expected a list", raw, received_at_us)]
        out = []
        for item in data:
            try:
                if type(item) is not dict:
                    raise Refused("mistyped field 'data': expected objects")
                out.append(parse_trade(instrument, item, received_at_us))
            except Refused as refused:
                out.append(reject(str(refused), orjson.dumps(item), received_at_us, instrument))
        out.sort(key=lambda record: record.trade_id if type(record) is Trade else -1)  # type: ignore[union-attr]
        return out

    def _control(self, message: dict, raw: bytes | str, received_at_us: int) -> list:
        if message.get("method") == "heartbeat":
            if _is_test_request(message):
                self.test_requests += 1
            return []
        if "error" in message:
            error = message.get("error")
            detail = (
                error if type(error) is not dict else f"{error.get('code')} {error.get('message')}"
            )
            return [
                reject(f"exchange error: {payload_text(str(detail))[:200]}", raw, received_at_us)
            ]
        if "result" in message and "id" in message:
            return []  # the answer to subscribe, set_heartbeat or test
        return [reject("not a Deribit subscription push or reply", raw, received_at_us)]


def _check_instrument(data: dict, instrument: str) -> None:
    sent = field(data, "instrument_name", str)
    if sent != instrument:
        raise Refused(f"instrument_name {sent[:32]!r} does not match channel {instrument}")  # type: ignore[index]


def _float(data: dict, key: str) -> float:
    value = data.get(key)
    if type(value) is float or type(value) is int:
        return float(value)  # type: ignore[arg-type]
    raise Refused(f"missing field {key!r}" if value is None else f"mistyped field {key!r}")


def parse_trade(instrument: str, item: dict, received_at_us: int) -> Trade:
    """One trade of a `trades` notification, checked field by field; the REST history's
    rows have the same shape, so `deribit.rest` parses them with it too."""
    _check_instrument(item, instrument)
    trade_seq = field(item, "trade_seq", int)
    if trade_seq < 0:  # type: ignore[operator]
        raise Refused("negative trade_seq")
    price = _float(item, "price")
    amount = _float(item, "amount")
    direction = field(item, "direction", str)
    if direction != "buy" and direction != "sell":
        raise Refused(f"mistyped field 'direction': {direction[:16]!r}")  # type: ignore[index]
    if not positive(price):
        raise Refused("non-positive price")
    if not positive(amount):
        raise Refused("non-positive qty")
    return Trade(
        instrument,
        trade_seq,  # type: ignore[arg-type]
        price,
        amount,
        ms_us(item),
        direction == "sell",
        received_at_us,
    )


def _quote(instrument: str, data: dict, received_at_us: int) -> Quote:
    _check_instrument(data, instrument)
    bid_price, bid_qty = _float(data, "best_bid_price"), _float(data, "best_bid_amount")
    ask_price, ask_qty = _float(data, "best_ask_price"), _float(data, "best_ask_amount")
    if not (positive(bid_price) and positive(ask_price)):
        raise Refused("non-positive price")
    if not (positive(bid_qty) and positive(ask_qty)):
        raise Refused("non-positive qty")
    return Quote(
        instrument, ms_us(data), received_at_us, None, bid_price, bid_qty, ask_price, ask_qty
    )
