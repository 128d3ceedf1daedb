"""OKX v5 public websocket (``wss://ws.okx.com:8443/ws/v5/public``): frames to records.

Every push is ``{"arg": {"channel", "instId"}, "data": [...]}`` (``books`` adds
``"action"``); control answers are ``{"event": "subscribe" | "error" | "notice", ...}`` and
the keep-alive answer is the bare text ``pong``. Numbers arrive as strings (except
``checksum``, ``seqId`` and ``prevSeqId``); ``ts`` is epoch milliseconds as a string.

Field mapping (OKX v5 docs; checked against the 2022-05-13 recording in
``tests/data/real/okx``):

- ``trades`` -> `Trade`: ``tradeId`` (decimal digits, +1 per instrument), ``px``, ``sz``,
  ``ts``, ``side`` = the **taker's** side, so ``is_buyer_maker = side == "sell"``. ``sz`` is
  in the instrument's own unit (base currency for SPOT, contracts for SWAP/FUTURES); a newer
  ``count`` field (fills aggregated) is accepted and not needed.
- ``bbo-tbt`` -> `Quote`: the single level of ``bids``/``asks``, ``ts``, ``seqId`` as the
  update id.
- ``books`` -> `Depth` (top 20, at every change while the book is verified) and
  `marketlake.exchanges.book.BookEvent` (out of sync / resynced), see
  `marketlake.exchanges.okx.books`.
- ``notice`` (a service upgrade is about to cut the connection) -> ``Resync(rollover=True)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import orjson

from marketlake.exchanges.book import DEPTH_LEVELS, BookEvent
from marketlake.exchanges.feed import (
    Quote,
    Record,
    Resync,
    Trade,
    json_object,
    payload_text,
    positive,
    reject,
)
from marketlake.exchanges.fields import Refused, decimal, field
from marketlake.exchanges.okx.books import OkxBooks, ms_text_us

CHANNELS: Final = ("trades", "bbo-tbt", "books")
#: Book channels with snapshot + update, ``seqId``/``prevSeqId`` and the top-25 checksum
#: (``books`` every 100 ms; the tick-by-tick ones need a VIP login, the format is the same).
BOOK_CHANNELS: Final = frozenset({"books", "books-l2-tbt", "books50-l2-tbt"})
_QUIET_EVENTS: Final = frozenset({"subscribe", "unsubscribe", "channel-conn-count"})


def subscribe(instruments: Sequence[str], channels: Sequence[str] = CHANNELS) -> bytes:
    """One ``subscribe`` op for every channel of every instrument."""
    args = [{"channel": channel, "instId": inst} for inst in instruments for channel in channels]
    return orjson.dumps({"op": "subscribe", "args": args})


class OkxParser:
    """Parses one connection's frames; keeps its books.

    Returns `marketlake.exchanges.feed.Record` values plus `BookEvent` for the books'
    sync transitions (the lander writes those to ``stream_events``).
    """

    def __init__(self, instruments: Sequence[str], depth_levels: int = DEPTH_LEVELS) -> None:
        self._instruments = frozenset(instruments)
        self.books = OkxBooks(depth_levels)

    def parse(self, raw: bytes | str, received_at_us: int) -> list[Record | BookEvent]:
        if raw == b"pong" or raw == "pong":
            return []
        message = json_object(raw)
        if type(message) is str:
            return [reject(message, raw, received_at_us)]
        arg = message.get("arg")
        data = message.get("data")
        if type(arg) is not dict or type(data) is not list:
            return self._control(message, raw, received_at_us)
        channel, instrument = arg.get("channel"), arg.get("instId")
        if type(channel) is not str or type(instrument) is not str:
            return [reject("mistyped field 'arg'", raw, received_at_us)]
        if instrument not in self._instruments:
            return [reject(f"symbol not subscribed: {instrument[:32]}", raw, received_at_us)]
        out: list[Record | BookEvent] = []
        for item in data:
            try:
                if type(item) is not dict:
                    raise Refused("mistyped field 'data': expected objects")
                if channel in BOOK_CHANNELS:
                    action = field(message, "action", str)
                    out.extend(self.books.apply(instrument, action, item, received_at_us))  # type: ignore[arg-type]
                elif channel == "trades":
                    out.append(parse_trade(instrument, item, received_at_us))
                elif channel == "bbo-tbt":
                    out.append(_quote(instrument, item, received_at_us))
                else:
                    reason = f"unsupported channel {channel[:32]!r}"
                    return [reject(reason, raw, received_at_us, instrument)]
            except Refused as refused:
                out.append(reject(str(refused), orjson.dumps(item), received_at_us, instrument))
                if channel in BOOK_CHANNELS:
                    event = self.books.refused(instrument, str(refused), received_at_us)
                    if event is not None:
                        out.append(event)
        return out

    def _control(self, message: dict, raw: bytes | str, received_at_us: int) -> list:
        event = message.get("event")
        if type(event) is not str:  # an unhashable value would raise in the set lookups
            return [reject("not an OKX push (no 'arg' and 'data')", raw, received_at_us)]
        if event in _QUIET_EVENTS:
            return []
        if event == "error":
            detail = payload_text(f"{message.get('code')} {message.get('msg')}")[:200]
            return [reject(f"exchange error: {detail}", raw, received_at_us)]
        if event == "notice":
            detail = payload_text(str(message.get("msg", "")))[:200]
            return [Resync(f"OKX notice: {detail}", rollover=True)]
        return [reject("not an OKX push (no 'arg' and 'data')", raw, received_at_us)]


def parse_trade(instrument: str, item: dict, received_at_us: int) -> Trade:
    """One trade of a `trades` push, checked field by field; the REST history's rows have
    the same shape, so `okx.rest` parses them with it too."""
    sent = field(item, "instId", str)
    if sent != instrument:
        raise Refused(f"instId {sent[:32]!r} does not match channel {instrument}")  # type: ignore[index]
    trade_id_text = field(item, "tradeId", str)
    # isdigit alone takes "²" (int() refuses it) and "١٢٣" (another script's digits).
    if not (trade_id_text.isascii() and trade_id_text.isdigit()):  # type: ignore[attr-defined]
        raise Refused("mistyped field 'tradeId': not an integer")
    price = decimal(item, "px")
    qty = decimal(item, "sz")
    side = field(item, "side", str)
    if side != "buy" and side != "sell":
        raise Refused(f"mistyped field 'side': {side[:16]!r}")  # type: ignore[index]
    if not positive(price):
        raise Refused("non-positive price")
    if not positive(qty):
        raise Refused("non-positive qty")
    ts_us = ms_text_us(item)
    return Trade(
        instrument,
        int(trade_id_text),
        price,
        qty,
        ts_us,
        side == "sell",
        received_at_us,  # type: ignore[arg-type]
    )


def _best(item: dict, key: str) -> tuple[float, float]:
    levels = field(item, key, list)
    if not levels:
        raise Refused(f"empty field {key!r}: no best level")
    level = levels[0]  # type: ignore[index]
    if type(level) is not list or len(level) < 2:
        raise Refused(f"mistyped field {key!r}: expected [price, size, ...]")
    pair = {"px": level[0], "sz": level[1]}
    price, size = decimal(pair, "px"), decimal(pair, "sz")
    if not positive(price):
        raise Refused(f"non-positive price in {key!r}")
    if not positive(size):
        raise Refused(f"non-positive qty in {key!r}")
    return price, size


def _quote(instrument: str, item: dict, received_at_us: int) -> Quote:
    bid_price, bid_qty = _best(item, "bids")
    ask_price, ask_qty = _best(item, "asks")
    seq_id = item.get("seqId")
    if seq_id is not None and type(seq_id) is not int:
        raise Refused("mistyped field 'seqId': expected int")
    ts_us = ms_text_us(item)
    return Quote(instrument, ts_us, received_at_us, seq_id, bid_price, bid_qty, ask_price, ask_qty)
