"""OKX v5 public websocket as a `marketlake.exchanges.feed.Feed`: connections and resyncs.

One connection carries up to `OkxFeed.max_instruments_per_connection` instruments, each on
``trades``, ``bbo-tbt`` and ``books``, subscribed with one ``subscribe`` op per connection.
What the parser (`OkxParser`) cannot do on its own is answer: when a book leaves sync (a
``prevSeqId`` that does not chain, a checksum that does not match, an update it could not
read) the stream parser here asks for the instrument's ``books`` to be unsubscribed and
subscribed again, which makes OKX send a fresh snapshot; the book is back in sync with it
(and asked again if no snapshot follows, `marketlake.exchanges.resubscribe`).
The websocket is cut after 30 s without traffic, so the connection sends the text ``ping``
(answered ``pong``) whenever it has heard nothing for `keepalive_after_s`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from marketlake.exchanges.book import BookEvent
from marketlake.exchanges.feed import GapFiller, Parser, Record, Send, Shard, per_connection
from marketlake.exchanges.okx.books import resubscribe
from marketlake.exchanges.okx.websocket import CHANNELS, OkxParser, subscribe
from marketlake.exchanges.registry import OKX
from marketlake.exchanges.resubscribe import Resubscriptions

#: OKX refuses a request frame above 64 KiB; 100 instruments x 3 channels stay far below.
MAX_INSTRUMENTS_PER_CONNECTION = 100


class OkxStreamParser(OkxParser):
    """`OkxParser` plus the resubscription that follows a book leaving sync."""

    def __init__(self, instruments: Sequence[str], depth_levels: int = 20) -> None:
        super().__init__(instruments, depth_levels)
        self.resubscriptions = Resubscriptions()

    def parse(self, raw: bytes | str, received_at_us: int) -> list[Record | BookEvent]:
        records = super().parse(raw, received_at_us)
        for instrument in self.resubscriptions.due(records, received_at_us):
            reason = f"{instrument}'s book is out of sync: fresh books snapshot"
            records.append(Send(resubscribe(instrument), reason))
        return records


@dataclass(frozen=True)
class OkxFeed:
    """OKX v5 public channels (trades, bbo-tbt, books) as a `Feed`."""

    channels: tuple[str, ...] = CHANNELS
    max_instruments_per_connection: int = MAX_INSTRUMENTS_PER_CONNECTION
    depth: int = 20
    exchange: str = "okx"
    #: ``tradeId`` runs +1 per instrument.
    trade_ids_contiguous: bool = True
    #: ``seqId`` may go *down* after an OKX maintenance: never deduplicate on it.
    book_ids_monotonic: bool = False
    max_connection_age_s: float | None = None
    control_messages_per_s: float = OKX.limits.control_messages_per_s
    max_frame_bytes: int = 4 << 20  # a 400-level books snapshot is ~30 KB
    silence_timeout_s: float = 30.0
    keepalive: bytes = b"ping"
    keepalive_after_s: float = 20.0

    def normalize_symbol(self, symbol: str) -> str:
        return OKX.normalize_symbol(symbol)

    def shards(self, ws_url: str, symbols: Sequence[str]) -> list[Shard]:
        instruments = [self.normalize_symbol(s) for s in symbols]
        return [
            Shard(ws_url, chunk, (subscribe(chunk, self.channels),))
            for chunk in per_connection(instruments, self.max_instruments_per_connection)
        ]

    def parser(self, symbols: Sequence[str]) -> Parser:
        return OkxStreamParser([self.normalize_symbol(s) for s in symbols], self.depth)

    def gap_filler(
        self, rest_url: str | None, *, weight_limit: int, budget: object | None = None
    ) -> GapFiller | None:
        """`OkxRest` (``/api/v5/market/history-trades``, by trade id); None without a URL."""
        if rest_url is None:
            return None
        from marketlake.exchanges.okx.rest import OkxRest

        return OkxRest(rest_url)
