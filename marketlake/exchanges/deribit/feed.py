"""Deribit v2 JSON-RPC websocket as a `marketlake.exchanges.feed.Feed`: connections, resyncs,
heartbeats.

Each connection first asks for heartbeats (``public/set_heartbeat``), then subscribes to
``trades.{i}.raw``, ``quote.{i}`` and ``book.{i}.raw`` of its instruments in one
``public/subscribe``. The stream parser adds what `DeribitParser` cannot do alone: it answers
every ``test_request`` with ``public/test`` (Deribit closes a connection that does not), and
when a book's ``prev_change_id`` does not chain (or a change cannot be read) it unsubscribes
and resubscribes that book, which brings a fresh snapshot.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from marketlake.exchanges.book import BookEvent
from marketlake.exchanges.deribit.books import resubscribe
from marketlake.exchanges.deribit.websocket import DeribitParser, set_heartbeat, subscribe
from marketlake.exchanges.feed import GapFiller, Parser, Record, Send, Shard, per_connection
from marketlake.exchanges.registry import DERIBIT
from marketlake.exchanges.resubscribe import Resubscriptions

#: Request ids of our own requests: set_heartbeat 1, subscribe 2, then these.
_FIRST_REQUEST_ID = 100


class DeribitStreamParser(DeribitParser):
    """`DeribitParser` plus heartbeat answers and the resubscription of a broken book."""

    def __init__(self, instruments: Sequence[str], depth_levels: int = 20) -> None:
        super().__init__(instruments, depth_levels)
        self._ids = itertools.count(_FIRST_REQUEST_ID, 2)
        self.resubscriptions = Resubscriptions()

    def parse(self, raw: bytes | str, received_at_us: int) -> list[Record | BookEvent]:
        heartbeats = self.test_requests
        records = super().parse(raw, received_at_us)
        if self.test_requests != heartbeats:
            test = {"jsonrpc": "2.0", "id": next(self._ids), "method": "public/test", "params": {}}
            records.append(Send((orjson.dumps(test),), "heartbeat test_request", urgent=True))
            return records
        for instrument in self.resubscriptions.due(records, received_at_us):
            reason = f"{instrument}'s book is out of sync: fresh book snapshot"
            records.append(Send(resubscribe(instrument, next(self._ids)), reason))
        return records


@dataclass(frozen=True)
class DeribitFeed:
    """Deribit trades, quotes and raw books as a `Feed`."""

    max_instruments_per_connection: int = 100
    depth: int = 20
    #: Seconds between Deribit's test_requests (Deribit's minimum is 10).
    heartbeat_s: int = 10
    exchange: str = "deribit"
    #: ``trade_seq`` runs +1 per instrument (``trade_id`` is shared by a currency's books).
    trade_ids_contiguous: bool = True
    book_ids_monotonic: bool = False
    max_connection_age_s: float | None = None
    control_messages_per_s: float = DERIBIT.limits.control_messages_per_s
    max_frame_bytes: int = 8 << 20  # a deep raw book snapshot of a perpetual is large
    silence_timeout_s: float = 30.0

    def normalize_symbol(self, symbol: str) -> str:
        return DERIBIT.normalize_symbol(symbol)

    def shards(self, ws_url: str, symbols: Sequence[str]) -> list[Shard]:
        instruments = [self.normalize_symbol(s) for s in symbols]
        return [
            Shard(ws_url, chunk, (set_heartbeat(self.heartbeat_s, 1), subscribe(chunk, 2)))
            for chunk in per_connection(instruments, self.max_instruments_per_connection)
        ]

    def parser(self, symbols: Sequence[str]) -> Parser:
        return DeribitStreamParser([self.normalize_symbol(s) for s in symbols], self.depth)

    def gap_filler(
        self, rest_url: str | None, *, weight_limit: int, budget: object | None = None
    ) -> GapFiller | None:
        """`DeribitRest` (``get_last_trades_by_instrument``, by trade_seq); None without a URL."""
        if rest_url is None:
            return None
        from marketlake.exchanges.deribit.rest import DeribitRest

        return DeribitRest(rest_url)
