"""A Binance spot book kept from the diff-depth stream and a REST snapshot.

Binance's documented procedure ("How to manage a local order book correctly", spot
WebSocket Streams), which every serious feed handler follows:

1. Open ``<symbol>@depth@100ms`` and buffer its events (``U`` first and ``u`` last update id
   of each, ``b``/``a`` the new absolute quantities, ``"0"`` removes a level).
2. Fetch ``GET /api/v3/depth?symbol=...&limit=5000`` (``lastUpdateId``, ``bids``, ``asks``).
3. If the snapshot is older than the first buffered event (``lastUpdateId + 1 < U``), updates
   between them are lost to us: fetch it again.
4. Drop buffered events with ``u <= lastUpdateId``; the first one applied must straddle the
   snapshot, ``U <= lastUpdateId + 1 <= u``.
5. From then on each event's ``U`` must be the previous ``u + 1``; anything else means the
   book has missed updates and must start again from step 2.

`BinanceDepthSync` is that procedure for one symbol, on the shared resync policy of
`marketlake.exchanges.book.SyncedBook`: a broken chain empties the book and reports a
`BookEvent`; events keep being buffered so that the next snapshot can be bridged to them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Final, NamedTuple

import orjson

from marketlake.exchanges.book import (
    BOOK_BAD_UPDATE,
    BOOK_GAP,
    BOOK_STALE_SNAPSHOT,
    DEPTH_LEVELS,
    BookEvent,
    BookSide,
    SyncedBook,
)
from marketlake.exchanges.errors import ResponseFormatError
from marketlake.exchanges.feed import INFINITY, Depth, Reject, reject
from marketlake.exchanges.fields import Refused, field

VENUE: Final = "binance"
#: Events kept while waiting for a snapshot: 100 s of a 100 ms stream.
MAX_BUFFERED: Final = 1000
_MICROSECONDS_FROM: Final = 100_000_000_000_000

Levels = list[tuple[float, float]]


class DepthUpdate(NamedTuple):
    """One ``depthUpdate`` event."""

    symbol: str
    first_id: int  # U
    final_id: int  # u
    event_time_us: int  # E
    bids: Levels
    asks: Levels


class DepthSnapshot(NamedTuple):
    """A ``/api/v3/depth`` response."""

    last_update_id: int
    bids: Levels
    asks: Levels


def _levels(data: dict, key: str, *, allow_zero: bool) -> Levels:
    raw = field(data, key, list)
    try:
        levels = [(float(price), float(qty)) for price, qty in raw]  # type: ignore[attr-defined]
        texts_ok = all(type(p) is str and type(q) is str for p, q in raw)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise Refused(f"mistyped field {key!r}: expected [price, qty] string pairs") from None
    if not texts_ok:
        raise Refused(f"mistyped field {key!r}: expected [price, qty] string pairs")
    for price, qty in levels:
        qty_ok = (qty >= 0.0 if allow_zero else qty > 0.0) and qty < INFINITY  # no 0 in snapshots
        if not (0.0 < price < INFINITY and qty_ok):
            raise Refused(f"level out of range in {key!r}: {price} {qty}")
    return levels


def parse_depth_update(data: dict) -> DepthUpdate:
    """The ``data`` of a ``<symbol>@depth[@100ms]`` event; `Refused` names a bad field."""
    if data.get("e") != "depthUpdate":
        raise Refused("mistyped field 'e': expected 'depthUpdate'")
    symbol = field(data, "s", str)
    first_id = field(data, "U", int)
    final_id = field(data, "u", int)
    event_time = field(data, "E", int)
    if first_id > final_id:  # type: ignore[operator]
        raise Refused(f"first update id U={first_id} after final u={final_id}")
    return DepthUpdate(
        symbol,  # type: ignore[arg-type]
        first_id,  # type: ignore[arg-type]
        final_id,  # type: ignore[arg-type]
        event_time if event_time >= _MICROSECONDS_FROM else event_time * 1000,  # type: ignore[operator]
        _levels(data, "b", allow_zero=True),
        _levels(data, "a", allow_zero=True),
    )


def parse_depth_snapshot(body: bytes | str) -> DepthSnapshot:
    """A ``/api/v3/depth`` response body; `ResponseFormatError` says what is wrong."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ResponseFormatError(f"depth: response is not JSON ({exc}): {body[:200]!r}") from exc
    if type(document) is not dict:
        raise ResponseFormatError(f"depth: expected a JSON object, got {str(document)[:200]}")
    try:
        last_update_id = field(document, "lastUpdateId", int)
        bids = _levels(document, "bids", allow_zero=False)
        asks = _levels(document, "asks", allow_zero=False)
    except Refused as refused:
        raise ResponseFormatError(f"depth: {refused}") from None
    return DepthSnapshot(last_update_id, bids, asks)  # type: ignore[arg-type]


def _apply(side: BookSide, levels: Levels) -> None:
    set_level = side.set
    for price, qty in levels:
        set_level(price, qty)


class BinanceDepthSync:
    """One symbol's book from ``@depth@100ms`` events and REST snapshots."""

    def __init__(
        self, symbol: str, depth_levels: int = DEPTH_LEVELS, max_buffered: int = MAX_BUFFERED
    ) -> None:
        self.symbol = symbol
        self.synced = SyncedBook(VENUE, symbol)
        self.depth_levels = depth_levels
        self._buffer: deque[DepthUpdate] = deque(maxlen=max_buffered)
        #: True until an event has straddled the snapshot (rule 4 applies, not rule 5).
        self._bridging = False
        #: Events applied; events dropped as older than the book.
        self.applied = 0
        self.dropped = 0

    @property
    def needs_snapshot(self) -> bool:
        """The book is not in sync: fetch a snapshot and pass it to `snapshot`."""
        return not self.synced.in_sync

    def update(self, event: DepthUpdate, received_at_us: int) -> list[Depth | BookEvent]:
        """One diff event; the top-N `Depth` once applied, or the `BookEvent` of a break."""
        if event.symbol != self.symbol:
            raise Refused(f"symbol {event.symbol[:32]!r} is not {self.symbol}")
        synced = self.synced
        if not synced.in_sync:
            self._buffer.append(event)
            synced.skip()
            return []
        out: list[Depth | BookEvent] = []
        if self._step(event, out):
            depth = synced.depth(event.event_time_us, received_at_us, self.depth_levels)
            if depth is not None:
                out.append(depth)
        return out

    def _step(self, event: DepthUpdate, out: list) -> bool:
        """Apply ``event`` to the in-sync book if it chains; False if it was not applied."""
        synced = self.synced
        last: int = synced.sequence  # type: ignore[assignment]
        if event.final_id <= last:
            self.dropped += 1  # already in the book (the snapshot or a repeat)
            return False
        expected = last + 1
        if event.first_id <= expected if self._bridging else event.first_id == expected:
            _apply(synced.book.bids, event.bids)
            _apply(synced.book.asks, event.asks)
            synced.sequence = event.final_id
            self._bridging = False
            self.applied += 1
            return True
        out.append(synced.fail(BOOK_GAP, expected, event.first_id, event.event_time_us))
        self._buffer.clear()
        self._buffer.append(event)  # the next snapshot may bridge to it
        return False

    def snapshot(self, snap: DepthSnapshot, received_at_us: int) -> list[Depth | BookEvent]:
        """Load a REST snapshot and replay the buffered events on top of it.

        A snapshot no newer than an in-sync book is ignored: the book is already past it,
        and the events in between were applied, not buffered.
        """
        synced = self.synced
        if synced.in_sync and snap.last_update_id <= synced.sequence:  # type: ignore[operator]
            return []
        buffer = self._buffer
        while buffer and buffer[0].final_id <= snap.last_update_id:
            buffer.popleft()
            self.dropped += 1
        if buffer and buffer[0].first_id > snap.last_update_id + 1:
            # Older than the stream: the updates in between are lost to us; ask again.
            stale = BookEvent(
                VENUE,
                self.symbol,
                BOOK_STALE_SNAPSHOT,
                buffer[0].first_id - 1,
                snap.last_update_id,
                0,
                received_at_us,
            )
            return [stale]
        book = synced.reset(snap.last_update_id)
        book.bids.load(snap.bids)
        book.asks.load(snap.asks)
        self._bridging = True
        out: list[Depth | BookEvent] = []
        ts_us = received_at_us
        pending, self._buffer = list(buffer), deque(maxlen=buffer.maxlen)
        for buffered in pending:
            if not synced.in_sync:
                self._buffer.append(buffered)
                continue
            if self._step(buffered, out):
                ts_us = buffered.event_time_us
        event = synced.resynced(received_at_us)
        if event is not None:
            out.insert(0, event)
        depth = synced.depth(ts_us, received_at_us, self.depth_levels)
        if depth is not None:
            out.append(depth)
        return out


class BinanceDiffBooks:
    """The diff-depth books of one connection: combined-stream frames in, records out.

    Frames are ``{"stream": "<symbol>@depth@100ms", "data": {...}}``; the caller fetches a
    REST snapshot for every symbol in `needing_snapshot` (at the start, and after any break)
    and hands the body to `snapshot`.
    """

    def __init__(self, symbols: Iterable[str], depth_levels: int = DEPTH_LEVELS) -> None:
        self.syncs = {symbol: BinanceDepthSync(symbol, depth_levels) for symbol in symbols}
        self._streams = {
            f"{symbol.lower()}@{suffix}": symbol
            for symbol in self.syncs
            for suffix in ("depth", "depth@100ms")
        }

    def needing_snapshot(self) -> list[str]:
        """Symbols whose book is not in sync, in subscription order."""
        return [symbol for symbol, sync in self.syncs.items() if sync.needs_snapshot]

    def parse(self, raw: bytes | str, received_at_us: int) -> list[Depth | BookEvent | Reject]:
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return [reject("not json", raw, received_at_us)]
        stream = message.get("stream") if type(message) is dict else None
        data = message.get("data") if type(message) is dict else None
        symbol = self._streams.get(stream) if type(stream) is str else None
        if symbol is None or type(data) is not dict:
            return [reject("not a subscribed diff-depth stream", raw, received_at_us)]
        sync = self.syncs[symbol]
        try:
            event = parse_depth_update(data)
            return sync.update(event, received_at_us)  # type: ignore[return-value]
        except Refused as refused:
            out: list[Depth | BookEvent | Reject] = [
                reject(str(refused), raw, received_at_us, symbol)
            ]
            if sync.synced.in_sync:  # the event is lost to the book
                last = sync.synced.sequence
                out.append(sync.synced.fail(BOOK_BAD_UPDATE, last, str(refused), received_at_us))
            return out

    def snapshot(
        self, symbol: str, body: bytes | str, received_at_us: int
    ) -> list[Depth | BookEvent]:
        """A ``/api/v3/depth`` body for ``symbol`` (`ResponseFormatError` if malformed)."""
        return self.syncs[symbol].snapshot(parse_depth_snapshot(body), received_at_us)
