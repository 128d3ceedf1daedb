"""Local L2 order books that know whether they can be trusted.

A venue's book feed is a snapshot followed by updates, each of which says which update it
follows (OKX ``prevSeqId``, Deribit ``prev_change_id``, Binance ``U``) and sometimes what the
book must look like afterwards (OKX's CRC32 of the top 25 levels). A book built from such a
stream is only as good as its weakest link: once one update is lost, reordered or fails its
checksum, every level it touched is suspect until a fresh snapshot replaces the whole book.

`SyncedBook` is that rule in one place, shared by every venue: the venue module decides
*whether* a message breaks the chain (its own sequence and checksum semantics); `SyncedBook`
decides what follows. A broken book is emptied and marked out of sync, produces no top-N
`Depth` until a snapshot brings it back, and each transition is reported as a `BookEvent`
for `stream_events` (venue, instrument, expected vs got, levels thrown away).

``ticks_depth`` gets the top 20 levels (`depth_record`, best first) after *every* message
that changed a verified book, not a sample: each row is then a state the venue vouched for
(by sequence and checksum), and the venues' own push rates (OKX ``books`` 100 ms, Binance
``@depth@100ms``) already bound the volume; Deribit ``.raw`` is per change, and its
``.100ms`` channel is the same format when that is too much.

Prices are kept in a sorted list beside a dict, so an update is a dict write plus, for a new
or removed level, one bisect and a memmove, and reading the top N is a slice: a snapshot
holds hundreds to thousands of levels and the top 20 is read at every change.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Sequence
from typing import Final, NamedTuple

from marketlake.exchanges.feed import Depth

#: Levels per side in a `Depth` record (the ``ticks_depth`` contract).
DEPTH_LEVELS: Final = 20

#: `BookEvent.kind` values, as they land in ``stream_events.kind``.
BOOK_GAP: Final = "book_gap"
BOOK_CHECKSUM: Final = "book_checksum_mismatch"
BOOK_RESYNCED: Final = "book_resynced"
BOOK_STALE_SNAPSHOT: Final = "book_stale_snapshot"
BOOK_BAD_UPDATE: Final = "book_bad_update"


class BookSide:
    """One side of the book; ``descending`` reads it highest-first (bids).

    With ``keep_text`` the price and size strings each level was last sent with are kept
    too, for checksums defined over the venue's own text (OKX): ``"0.1"`` and ``"0.10"`` are
    the same float but not the same CRC32.
    """

    __slots__ = ("_descending", "_prices", "_sizes", "_texts")

    def __init__(self, descending: bool, keep_text: bool = False) -> None:
        self._descending = descending
        self._prices: list[float] = []  # ascending
        self._sizes: dict[float, float] = {}
        self._texts: dict[float, tuple[str, str]] | None = {} if keep_text else None

    def __len__(self) -> int:
        return len(self._prices)

    def __contains__(self, price: float) -> bool:
        return price in self._sizes

    def set(self, price: float, size: float, texts: tuple[str, str] | None = None) -> None:
        """Set the size at ``price``; 0 removes the level (a missing level is no error)."""
        sizes = self._sizes
        if size == 0.0:
            if sizes.pop(price, None) is not None:
                prices = self._prices
                del prices[bisect_left(prices, price)]
                if self._texts is not None:
                    del self._texts[price]
        else:
            if price not in sizes:
                insort(self._prices, price)
            sizes[price] = size
            if self._texts is not None:
                self._texts[price] = texts if texts is not None else (repr(price), repr(size))

    def clear(self) -> None:
        self._prices.clear()
        self._sizes.clear()
        if self._texts is not None:
            self._texts.clear()

    def load(
        self, levels: Sequence[tuple[float, float]], texts: Sequence[tuple[str, str]] | None = None
    ) -> None:
        """Replace the whole side with a snapshot's levels: one sort, not an insort per level.

        Levels of size 0 are left out, as `set` would delete them; ``texts`` (one per level)
        are kept when the side keeps texts.
        """
        sizes = {price: size for price, size in levels if size != 0.0}
        self._sizes = sizes
        self._prices = sorted(sizes)
        if self._texts is not None:
            if texts is None:
                texts = [(repr(price), repr(size)) for price, size in levels]
            self._texts = {
                price: text
                for (price, size), text in zip(levels, texts, strict=True)
                if size != 0.0
            }

    def top(self, depth: int) -> tuple[list[float], list[float]]:
        """The best ``depth`` levels as (prices, sizes), best first."""
        prices = self._prices[-depth:][::-1] if self._descending else self._prices[:depth]
        sizes = self._sizes
        return prices, [sizes[p] for p in prices]

    def top_texts(self, depth: int) -> list[tuple[str, str]]:
        """The best ``depth`` levels as the (price, size) strings the venue sent, best first."""
        if self._texts is None:
            raise ValueError("this book side keeps no level texts (keep_text=False)")
        prices = self._prices[-depth:][::-1] if self._descending else self._prices[:depth]
        texts = self._texts
        return [texts[p] for p in prices]

    def levels(self) -> list[tuple[float, float]]:
        """Every level, best first (for comparing whole books and building snapshots)."""
        prices = self._prices[::-1] if self._descending else self._prices
        sizes = self._sizes
        return [(p, sizes[p]) for p in prices]

    def level_texts(self) -> list[tuple[str, str]]:
        """Every level's (price, size) strings, best first."""
        return self.top_texts(len(self._prices))


class Book:
    """Bids and asks of one instrument."""

    __slots__ = ("asks", "bids")

    def __init__(self, keep_text: bool = False) -> None:
        self.bids = BookSide(descending=True, keep_text=keep_text)
        self.asks = BookSide(descending=False, keep_text=keep_text)

    def __len__(self) -> int:
        """Levels on both sides."""
        return len(self.bids) + len(self.asks)

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()

    def state(self) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """(bids, asks), every level best first: two books are equal when their states are."""
        return self.bids.levels(), self.asks.levels()


class BookEvent(NamedTuple):
    """A book left or re-entered sync: one row of ``stream_events``.

    ``expected``/``got`` are the venue's own values (sequence ids, checksums);
    ``levels_affected`` is the number of levels thrown away with the book (for a resync:
    the levels of the snapshot that replaced it); ``skipped`` counts the updates ignored
    while out of sync.
    """

    venue: str
    instrument: str
    kind: str
    expected: int | str | None
    got: int | str | None
    levels_affected: int
    ts_us: int
    skipped: int = 0

    def detail(self) -> dict[str, object]:
        """The ``stream_events.detail`` object (the lander serializes it as JSON)."""
        return {
            "venue": self.venue,
            "instrument": self.instrument,
            "expected": self.expected,
            "got": self.got,
            "levels_affected": self.levels_affected,
            "skipped_updates": self.skipped,
            "ts_us": self.ts_us,
        }


class SyncedBook:
    """One instrument's book plus the resync policy every venue shares.

    States: *awaiting* a first snapshot, *in sync*, *out of sync*. Only a snapshot
    (`reset`) makes a book in sync; a broken chain (`fail`) empties it. While not in sync,
    updates are counted and ignored and `depth` returns None, so a book known to be wrong is
    never written.
    """

    __slots__ = (
        "_failed",
        "book",
        "failures",
        "in_sync",
        "instrument",
        "resyncs",
        "sequence",
        "skipped",
        "venue",
    )

    def __init__(self, venue: str, instrument: str, keep_text: bool = False) -> None:
        self.venue = venue
        self.instrument = instrument
        self.book = Book(keep_text=keep_text)
        #: The venue's id of the last message applied (None: the venue sends none).
        self.sequence: int | None = None
        self.in_sync = False
        self.failures = 0
        self.resyncs = 0
        #: Updates ignored since the book went out of sync (or before its first snapshot).
        self.skipped = 0
        self._failed = False

    def reset(self, sequence: int | None) -> Book:
        """Start again from a snapshot: the book is emptied and in sync; fill it from the
        snapshot's levels. The `BookEvent` of the resync is read with `resynced` afterwards."""
        self.book.clear()
        self.sequence = sequence
        self.in_sync = True
        if not self._failed:
            self.skipped = 0  # updates before the first snapshot are no loss: none is reported
        return self.book

    def resynced(self, ts_us: int) -> BookEvent | None:
        """After a snapshot that followed a failure: the event saying the book is back."""
        if not self._failed or not self.in_sync:
            return None
        self._failed = False
        self.resyncs += 1
        skipped, self.skipped = self.skipped, 0
        return BookEvent(
            self.venue,
            self.instrument,
            BOOK_RESYNCED,
            None,
            self.sequence,
            len(self.book),
            ts_us,
            skipped,
        )

    def fail(
        self, kind: str, expected: int | str | None, got: int | str | None, ts_us: int
    ) -> BookEvent:
        """The chain is broken: empty the book, mark it out of sync, say so."""
        levels = len(self.book)
        self.book.clear()
        self.in_sync = False
        self._failed = True
        self.failures += 1
        self.sequence = None
        return BookEvent(self.venue, self.instrument, kind, expected, got, levels, ts_us)

    def lost(self, reason: str, ts_us: int) -> BookEvent | None:
        """An update could not be read: the book has missed it and goes out of sync.

        Nothing to report for a book that is not in sync already (its next snapshot resets
        it anyway)."""
        if not self.in_sync:
            return None
        return self.fail(BOOK_BAD_UPDATE, self.sequence, reason, ts_us)

    def skip(self) -> None:
        """An update arrived while the book is not in sync: it cannot be applied."""
        self.skipped += 1

    def depth(
        self, ts_us: int, received_at_us: int, levels: int = DEPTH_LEVELS, symbol: str | None = None
    ) -> Depth | None:
        """The top ``levels`` as a `Depth` record, or None while the book is not in sync."""
        if not self.in_sync:
            return None
        return depth_record(
            self.book, symbol or self.instrument, ts_us, received_at_us, self.sequence, levels
        )


def depth_record(
    book: Book,
    symbol: str,
    ts_us: int,
    received_at_us: int,
    last_update_id: int | None,
    levels: int = DEPTH_LEVELS,
) -> Depth:
    """The top ``levels`` of ``book`` as a `Depth` (best level first on each side)."""
    bid_prices, bid_qtys = book.bids.top(levels)
    ask_prices, ask_qtys = book.asks.top(levels)
    return Depth(
        symbol, ts_us, received_at_us, last_update_id, bid_prices, bid_qtys, ask_prices, ask_qtys
    )


__all__ = [
    "BOOK_BAD_UPDATE",
    "BOOK_CHECKSUM",
    "BOOK_GAP",
    "BOOK_RESYNCED",
    "BOOK_STALE_SNAPSHOT",
    "DEPTH_LEVELS",
    "Book",
    "BookEvent",
    "BookSide",
    "SyncedBook",
    "depth_record",
]
