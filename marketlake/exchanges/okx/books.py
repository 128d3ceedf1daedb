"""OKX v5 ``books`` channel: a local book per instrument, verified at every message.

Wire format (OKX v5 "Order book channel"; checked against the recorded session in
``tests/data/real/okx``): ``{"arg": {"channel": "books", "instId": ...}, "action":
"snapshot" | "update", "data": [{"asks", "bids", "ts", "checksum", "seqId", "prevSeqId"}]}``.
A level is ``[price, size, "0", orderCount]``, all strings; size ``"0"`` deletes the level.

Two independent proofs that the local book equals OKX's:

- **Sequence.** An update's ``prevSeqId`` must equal the ``seqId`` of the message before it
  (a snapshot's ``prevSeqId`` is -1). When the book has not changed for a while OKX sends an
  update with no levels and ``seqId == prevSeqId``, which satisfies the same rule; after
  maintenance ``seqId`` may be *smaller* than ``prevSeqId``, which the rule also allows.
  ``seqId``/``prevSeqId`` were added in 2022: a message without them (as in the recording)
  is checked by its checksum alone.
- **Checksum.** ``checksum`` is the CRC32, as a signed 32-bit integer, of the best 25 bid
  and ask levels interleaved as ``bidPx:bidSz:askPx:askSz:...`` in the exact strings OKX
  sent (a side with fewer than 25 levels simply contributes fewer).

A failure of either marks the book out of sync (`marketlake.exchanges.book.SyncedBook`); the
feed then resubscribes the instrument (`resubscribe`) to get a fresh snapshot.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Final

import orjson

from marketlake.exchanges.book import (
    BOOK_CHECKSUM,
    BOOK_GAP,
    DEPTH_LEVELS,
    BookEvent,
    BookSide,
    SyncedBook,
)
from marketlake.exchanges.feed import INFINITY, Depth
from marketlake.exchanges.fields import Refused

VENUE: Final = "okx"
CHECKSUM_LEVELS: Final = 25

Level = tuple[float, float, str, str]  # price, size, price text, size text


def checksum(bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]) -> int:
    """OKX's book checksum of the (price, size) strings of both sides, best first."""
    parts: list[str] = []
    for i in range(CHECKSUM_LEVELS):
        if i < len(bids):
            parts += bids[i]
        if i < len(asks):
            parts += asks[i]
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def book_checksum(synced: SyncedBook) -> int:
    book = synced.book
    return checksum(book.bids.top_texts(CHECKSUM_LEVELS), book.asks.top_texts(CHECKSUM_LEVELS))


def resubscribe(instrument: str) -> tuple[bytes, bytes]:
    """The messages that make OKX send a fresh ``books`` snapshot of ``instrument``."""
    arg = {"channel": "books", "instId": instrument}
    return (
        orjson.dumps({"op": "unsubscribe", "args": [arg]}),
        orjson.dumps({"op": "subscribe", "args": [arg]}),
    )


def _levels(item: dict, key: str) -> list[Level]:
    """Every level of one side, checked before any is applied (a book is never half-updated).

    One comprehension converts, one pass checks: the hot path of every book message.
    """
    raw = item.get(key)
    if type(raw) is not list:
        raise Refused(f"missing field {key!r}" if raw is None else f"mistyped field {key!r}")
    try:
        levels = [(float(level[0]), float(level[1]), level[0], level[1]) for level in raw]
    except (TypeError, ValueError, IndexError, KeyError):
        raise Refused(f"mistyped field {key!r}: expected [price, size, ...] strings") from None
    for price, size, price_text, size_text in levels:
        if type(price_text) is not str or type(size_text) is not str:
            raise Refused(f"mistyped field {key!r}: expected [price, size, ...] strings")
        if not (0.0 < price < INFINITY and 0.0 <= size < INFINITY):
            raise Refused(f"mistyped field {key!r}: level {price_text}:{size_text} out of range")
    return levels


def _apply(side: BookSide, levels: list[Level]) -> None:
    set_level = side.set
    for price, size, price_text, size_text in levels:
        set_level(price, size, (price_text, size_text))


def _load(side: BookSide, levels: list[Level]) -> None:
    side.load([(p, s) for p, s, _, _ in levels], [(pt, st) for _, _, pt, st in levels])


def _optional_int(item: dict, key: str) -> int | None:
    value = item.get(key)
    if value is None:
        return None
    if type(value) is not int:
        raise Refused(f"mistyped field {key!r}: expected int")
    return value


def ms_text_us(item: dict, key: str = "ts") -> int:
    """OKX's string epoch-milliseconds field as microseconds."""
    text = item.get(key)
    if type(text) is not str:
        raise Refused(f"missing field {key!r}" if text is None else f"mistyped field {key!r}")
    if not (text.isascii() and text.isdigit()) or len(text) != 13:  # not "²" nor "١"
        raise Refused(f"mistyped field {key!r}: not a 13-digit epoch in ms")
    return int(text) * 1000


class OkxBooks:
    """The books of one connection, one `SyncedBook` per instrument.

    One book channel per instrument and connection: ``books`` and ``books-l2-tbt`` of the
    same instrument carry separate ``seqId`` chains and would break each other's.
    """

    def __init__(self, depth_levels: int = DEPTH_LEVELS) -> None:
        self.books: dict[str, SyncedBook] = {}
        self.depth_levels = depth_levels
        #: Messages whose checksum was recomputed and matched.
        self.verified = 0

    def apply(
        self, instrument: str, action: str, item: dict, received_at_us: int
    ) -> list[Depth | BookEvent]:
        """Apply one ``data`` element; the top-N `Depth` if the book is in sync afterwards.

        A malformed element raises `Refused` before anything is applied; the caller
        quarantines it and calls `refused`, because the book has then lost an update.
        """
        ts_us = ms_text_us(item)
        sent_checksum = _optional_int(item, "checksum")
        seq_id = _optional_int(item, "seqId")
        prev_seq_id = _optional_int(item, "prevSeqId")
        bids = _levels(item, "bids")
        asks = _levels(item, "asks")
        synced = self.books.get(instrument)
        out: list[Depth | BookEvent] = []
        if action == "snapshot":
            if synced is None:
                synced = self.books[instrument] = SyncedBook(VENUE, instrument, keep_text=True)
            book = synced.reset(seq_id)
            _load(book.bids, bids)
            _load(book.asks, asks)
        elif action == "update":
            if synced is None or not synced.in_sync:
                if synced is not None:
                    synced.skip()
                return out
            if (
                prev_seq_id is not None
                and synced.sequence is not None
                and prev_seq_id != synced.sequence
            ):
                out.append(synced.fail(BOOK_GAP, synced.sequence, prev_seq_id, ts_us))
                return out
            _apply(synced.book.bids, bids)
            _apply(synced.book.asks, asks)
            synced.sequence = seq_id
        else:
            raise Refused(f"mistyped field 'action': {action[:16]!r}")
        if sent_checksum is not None:
            computed = book_checksum(synced)
            if computed != sent_checksum:
                out.append(synced.fail(BOOK_CHECKSUM, sent_checksum, computed, ts_us))
                return out
            self.verified += 1
        event = synced.resynced(ts_us)
        if event is not None:
            out.append(event)
        if bids or asks or action == "snapshot":
            depth = synced.depth(ts_us, received_at_us, self.depth_levels)
            if depth is not None:
                out.append(depth)
        return out

    def refused(self, instrument: str, reason: str, received_at_us: int) -> BookEvent | None:
        """An update could not be read: the book has lost it and goes out of sync."""
        synced = self.books.get(instrument)
        return None if synced is None else synced.lost(reason, received_at_us)
