"""The one small interface between an exchange's websocket wire format and the lander.

An exchange module (``marketlake/exchanges/<exchange>/``) declares a `Feed`: how to connect
for a set of symbols (URLs, subscribe messages, the exchange's connection limits) and how to
turn one raw frame into normalized records. The connection layer and the lander in
``streaming/`` only ever see this interface, so adding an exchange is one package plus one
`marketlake.exchanges.registry.Venue`; nothing in ``streaming/`` names an exchange.

Records are small named tuples rather than dicts or frames: one frame yields zero or more of
them, the lander appends their fields to per-column lists, and a DataFrame is only built once
per flush. Times are integer microseconds since the epoch (UTC), the unit of every ``ts``
column, so no datetime object is made per message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, Protocol

import orjson
import polars as pl

from marketlake.schemas import QUARANTINE_PAYLOAD_LIMIT


class Trade(NamedTuple):
    """One trade; ``ts_us`` is the exchange's trade time. ``quote_qty`` is derived at flush."""

    symbol: str
    trade_id: int
    price: float
    qty: float
    ts_us: int
    is_buyer_maker: bool
    received_at_us: int


class Quote(NamedTuple):
    """Best bid/ask. ``update_id`` is the exchange's book update id, or None if it sends none."""

    symbol: str
    ts_us: int
    received_at_us: int
    update_id: int | None
    bid_price: float
    bid_qty: float | None
    ask_price: float
    ask_qty: float | None


class Depth(NamedTuple):
    """A top-N book snapshot, best level first on each side."""

    symbol: str
    ts_us: int
    received_at_us: int
    last_update_id: int | None
    bid_prices: list[float]
    bid_qtys: list[float]
    ask_prices: list[float]
    ask_qtys: list[float]


class Reject(NamedTuple):
    """Input refused: it goes to `quarantine` with the reason and the (truncated) raw frame."""

    reason: str
    payload: str
    received_at_us: int
    symbol: str | None = None


class Resync(NamedTuple):
    """The connection must be replaced.

    ``rollover=False``: its state can no longer be trusted (a lost sequence number), so it is
    closed and reopened. ``rollover=True``: it still works but is about to go away (a server
    shutdown notice), so the replacement is opened first, as before the 24 h cut-off.
    """

    reason: str
    rollover: bool = False


class Send(NamedTuple):
    """Frames the connection must send now, in order: an answer the exchange waits for (a
    Deribit ``test_request``) or a resubscription that brings a fresh book snapshot.

    ``urgent`` frames go ahead of everything queued (an answer the exchange closes the
    connection without must not wait behind a hundred resubscriptions).
    """

    messages: tuple[bytes, ...]
    reason: str
    urgent: bool = False


Record = Trade | Quote | Depth | Reject | Resync | Send


class Parser(Protocol):
    """Turns raw frames of one connection into records; holds that connection's state."""

    def parse(self, raw: bytes | str, received_at_us: int) -> list[Record]:
        """Every record in ``raw``; never raises on bad input (it returns a `Reject`)."""
        ...


@dataclass(frozen=True)
class Shard:
    """One websocket connection's worth of subscriptions."""

    url: str
    symbols: tuple[str, ...]
    #: Sent in order right after connecting, throttled to the feed's control-message rate.
    subscribe: tuple[bytes, ...] = ()


def per_connection(symbols: Sequence[str], size: int) -> list[tuple[str, ...]]:
    """`symbols` in order, cut into the connections of at most `size` each."""
    return [tuple(symbols[i : i + size]) for i in range(0, len(symbols), size)]


class GapFiller(Protocol):
    """Fetches a missing trade id range from the exchange's REST API (blocking; run in a thread)."""

    def trades_between_ids(self, symbol: str, first_id: int, last_id: int) -> pl.DataFrame:
        """Trades ``first_id..last_id`` inclusive, as `marketlake.schemas.RAW_TRADES`."""
        ...


class Feed(Protocol):
    """What the lander needs to know about one exchange's websocket API.

    Optionally, ``keepalive: bytes`` and ``keepalive_after_s: float``: a frame the client
    must send after that many silent seconds or be cut (OKX's text ``ping``); feeds without
    them (Binance, Coinbase: protocol-level pings suffice) need not declare them.
    """

    #: The ``exchange`` column value, e.g. ``binance``.
    exchange: str
    #: Trade ids run +1 per symbol with no holes, so a jump is a lost trade.
    trade_ids_contiguous: bool
    #: Quote/depth update ids only grow per symbol across connections (safe to dedupe on).
    book_ids_monotonic: bool
    #: The exchange closes connections older than this (seconds), or None.
    max_connection_age_s: float | None
    #: Outgoing control messages (subscribe) allowed per second per connection.
    control_messages_per_s: float
    #: Largest frame accepted; anything bigger closes the connection (1009) rather than
    #: letting one frame exhaust memory.
    max_frame_bytes: int
    #: Seconds without any frame (heartbeats included) after which a connection is dead.
    silence_timeout_s: float

    def normalize_symbol(self, symbol: str) -> str: ...

    def shards(self, ws_url: str, symbols: Sequence[str]) -> list[Shard]: ...

    def parser(self, symbols: Sequence[str]) -> Parser: ...

    def gap_filler(
        self, rest_url: str | None, *, weight_limit: int, budget: object | None = None
    ) -> GapFiller | None:
        """A REST client for gap fills (None: the exchange can't fill by id range).

        ``budget`` is the exchange's own rate-limit budget object, to share it with other
        clients of the same IP (a backfill running in the same process).
        """
        ...


INFINITY: Final = float("inf")


def payload_text(raw: bytes | str) -> str:
    """``raw`` as text cut to the quarantine limit (invalid UTF-8 replaced, never refused)."""
    text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8", "replace")
    return text[:QUARANTINE_PAYLOAD_LIMIT]


def reject(reason: str, raw: bytes | str, received_at_us: int, symbol: str | None = None) -> Reject:
    return Reject(reason, payload_text(raw), received_at_us, symbol)


def json_object(raw: bytes | str) -> dict[str, Any] | str:
    """The frame as a JSON object, or why it is not one (the reason it is quarantined)."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "not json"
    return message if type(message) is dict else "not a json object"


def positive(value: float) -> bool:
    """True for a finite number above zero (NaN and infinity are refused too)."""
    return 0.0 < value < INFINITY


def feed_for(exchange: str, **options: object) -> Feed:
    """The `Feed` of ``exchange`` (options go to its constructor), or a clear error.

    The exchanges are declared in `marketlake.exchanges.registry`.
    """
    from marketlake.exchanges.registry import venue

    return venue(exchange).feed(**options)
