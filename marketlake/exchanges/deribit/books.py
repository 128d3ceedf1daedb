"""Deribit v2 ``book.{instrument}.raw``: a local book per instrument, chained by change ids.

Wire format (Deribit API v2 "book.{instrument_name}.{interval}"; checked against the
recorded session in ``tests/data/real/deribit``): ``data = {"type": "snapshot" | "change",
"instrument_name", "timestamp" (ms), "change_id", "prev_change_id", "bids", "asks"}``, a
level being ``[action, price, amount]`` with action ``new``, ``change`` or ``delete``
(amounts are absolute, not deltas; a delete carries 0). A snapshot carries no
``prev_change_id`` (or null); every change's ``prev_change_id`` must equal the ``change_id``
before it. Deribit sends no checksum, so the chain is the proof: a break marks the book out
of sync (`marketlake.exchanges.book.SyncedBook`) and the feed resubscribes (`resubscribe`)
for a fresh snapshot.

Amounts are in the instrument's own unit: USD for futures and perpetuals, the base coin for
options.
"""

from __future__ import annotations

from typing import Final

import orjson

from marketlake.exchanges.book import (
    BOOK_GAP,
    DEPTH_LEVELS,
    BookEvent,
    BookSide,
    SyncedBook,
)
from marketlake.exchanges.feed import INFINITY, Depth
from marketlake.exchanges.fields import Refused, field

VENUE: Final = "deribit"
_ACTIONS: Final = frozenset({"new", "change", "delete"})
_MS_MIN: Final = 10**12
_MS_MAX: Final = 10**13


def resubscribe(instrument: str, request_id: int = 0) -> tuple[bytes, bytes]:
    """The requests that make Deribit send a fresh ``book`` snapshot of ``instrument``."""
    channels = [f"book.{instrument}.raw"]
    return (
        orjson.dumps(
            {
                "jsonrpc": "2.0",
                "id": request_id,
                "method": "public/unsubscribe",
                "params": {"channels": channels},
            }
        ),
        orjson.dumps(
            {
                "jsonrpc": "2.0",
                "id": request_id + 1,
                "method": "public/subscribe",
                "params": {"channels": channels},
            }
        ),
    )


def ms_us(data: dict, key: str = "timestamp") -> int:
    """Deribit's integer epoch-milliseconds field as microseconds."""
    value = field(data, key, int)
    if not _MS_MIN <= value < _MS_MAX:  # type: ignore[operator]
        raise Refused(f"mistyped field {key!r}: not a 13-digit epoch in ms")
    return value * 1000  # type: ignore[operator]


def _number(value: object) -> float:
    if type(value) is float or type(value) is int:
        return float(value)  # type: ignore[arg-type]
    raise TypeError


def _levels(data: dict, key: str) -> list[tuple[float, float]]:
    """(price, amount) of every level of one side; a delete becomes amount 0."""
    raw = field(data, key, list)
    levels: list[tuple[float, float]] = []
    append = levels.append
    for level in raw:  # type: ignore[attr-defined]
        try:
            action, price, amount = level
            price, amount = _number(price), _number(amount)
        except (TypeError, ValueError):
            raise Refused(f"mistyped field {key!r}: expected [action, price, amount]") from None
        if type(action) is not str or action not in _ACTIONS:  # a list is unhashable
            raise Refused(f"mistyped field {key!r}: unknown action {str(action)[:16]!r}")
        if not 0.0 < price < INFINITY:
            raise Refused(f"non-positive price in {key!r}")
        if action == "delete":
            amount = 0.0
        elif not 0.0 < amount < INFINITY:
            raise Refused(f"non-positive amount in {key!r} ({action})")
        append((price, amount))
    return levels


def _apply(side: BookSide, levels: list[tuple[float, float]]) -> None:
    set_level = side.set
    for price, amount in levels:
        set_level(price, amount)


class DeribitBooks:
    """The ``book.*`` books of one connection, one `SyncedBook` per instrument."""

    def __init__(self, depth_levels: int = DEPTH_LEVELS) -> None:
        self.books: dict[str, SyncedBook] = {}
        self.depth_levels = depth_levels
        #: Changes whose ``prev_change_id`` matched the book's last ``change_id``.
        self.chained = 0

    def apply(self, instrument: str, data: dict, received_at_us: int) -> list[Depth | BookEvent]:
        """Apply one book message; the top-N `Depth` if the book is in sync afterwards."""
        kind = field(data, "type", str)
        ts_us = ms_us(data)
        change_id = field(data, "change_id", int)
        bids = _levels(data, "bids")
        asks = _levels(data, "asks")
        synced = self.books.get(instrument)
        out: list[Depth | BookEvent] = []
        if kind == "snapshot":
            if synced is None:
                synced = self.books[instrument] = SyncedBook(VENUE, instrument)
            book = synced.reset(change_id)  # type: ignore[arg-type]
            book.bids.load(bids)
            book.asks.load(asks)
            event = synced.resynced(ts_us)
            if event is not None:
                out.append(event)
        elif kind == "change":
            prev = field(data, "prev_change_id", int)
            if synced is None or not synced.in_sync:
                if synced is not None:
                    synced.skip()
                return out
            if prev != synced.sequence:
                out.append(synced.fail(BOOK_GAP, synced.sequence, prev, ts_us))  # type: ignore[arg-type]
                return out
            _apply(synced.book.bids, bids)
            _apply(synced.book.asks, asks)
            synced.sequence = change_id  # type: ignore[assignment]
            self.chained += 1
        else:
            raise Refused(f"mistyped field 'type': {kind[:16]!r}")  # type: ignore[index]
        depth = synced.depth(ts_us, received_at_us, self.depth_levels)
        if depth is not None:
            out.append(depth)
        return out

    def refused(self, instrument: str, reason: str, received_at_us: int) -> BookEvent | None:
        """A book message could not be read: the book has lost it and goes out of sync."""
        synced = self.books.get(instrument)
        return None if synced is None else synced.lost(reason, received_at_us)
