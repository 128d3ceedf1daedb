"""Every exchange marketlake streams from, declared once: the one place that names them.

A `Venue` says what code elsewhere used to guess: how the exchange spells an instrument
(and how a user's spelling is normalized to it), where its websocket and REST APIs are and
which setting moves them (`orchestration/settings.py` reads the environment variables named
here), the limits it enforces on a client, the `Feed` that subscribes and parses, and whether
a lost trade id range can be fetched back by id.

Nothing decides a venue from a symbol's shape: ``BTC-USD`` is a Coinbase product and also an
OKX spot instrument, ``BTCUSDT`` could be a Binance symbol or a Deribit currency pair. The
venue is always given (``--exchange``, the stream job's config, the lake's ``exchange``
partition column), and the registry then checks the symbol against *that* venue's syntax.

Feeds are named as ``"module:attribute"`` and imported on first use, so importing the
registry imports no exchange package.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from marketlake.schemas import InvalidSymbolError
from marketlake.schemas import normalize_symbol as _schema_symbol

if TYPE_CHECKING:
    from marketlake.exchanges.feed import Feed


@dataclass(frozen=True)
class Endpoint:
    """A base URL, its production default and the environment variable that overrides it."""

    default: str
    env: str


@dataclass(frozen=True)
class Limits:
    """What the exchange allows one client (the feeds keep under these; docs in each feed)."""

    #: Instruments (or streams) one connection may carry.
    subscriptions_per_connection: int
    #: Outgoing control messages (subscribe, ping, heartbeat answers) per second per connection.
    control_messages_per_s: float
    #: Connection attempts per window per IP: (attempts, window seconds).
    connection_attempts: tuple[int, float]
    #: The exchange cuts connections older than this many seconds (None: it does not).
    max_connection_age_s: float | None = None
    #: The exchange drops a connection that sends nothing for this long (None: it does not).
    idle_cutoff_s: float | None = None
    #: Requests per second one IP may send to the REST trade history (None: not counted per
    #: request; Binance counts a weight per minute, `BinanceEndpoints.weight_limit`).
    rest_requests_per_s: float | None = None


@dataclass(frozen=True)
class InstrumentList:
    """Where the venue lists its instruments, and the parser of that response.

    The parser is ``"module:attribute"`` (imported on use, like the feeds), a function of
    one decoded JSON response returning `marketlake.instrument_specs.InstrumentSpec`s; ``paths``
    (one request each: OKX lists one instrument type per request) are relative to ``base``
    when given, else to the venue's `Venue.rest`.
    """

    paths: tuple[str, ...]
    parser: str
    #: The production base URL when the list is not on `Venue.rest` (Coinbase's REST host).
    base: str | None = None


@dataclass(frozen=True)
class Venue:
    """One exchange as marketlake knows it."""

    name: str
    title: str
    #: The venue's instrument syntax (after `normalize`), and an example for messages.
    syntax: re.Pattern[str]
    example: str
    ws: Endpoint
    rest: Endpoint | None
    limits: Limits
    #: ``"module:attribute"`` of the zero-argument `Feed` factory.
    feed_factory: str
    #: How a lost trade id range is fetched back (None: it cannot be, it stays a recorded gap).
    gap_fill: str | None
    #: The venue's channels landed into ticks_trades / ticks_quotes / ticks_depth.
    channels: tuple[str, str, str]
    #: Upper-cases a user's spelling; venues with lower-case parts fix them up after.
    fixup: Callable[[str], str] | None = None
    #: The venue's instrument list (`marketlake.instrument_specs`); the symbol's syntax otherwise.
    instruments: InstrumentList | None = None
    #: Where `marketlake backfill` reads a past day's trades: ``"archive"`` and/or ``"rest"``,
    #: in the order tried; empty when the venue serves no history (its days come from the
    #: stream alone).
    history: tuple[str, ...] = ()
    #: What `history` reads, for messages and the docs.
    history_detail: str = ""

    def normalize_symbol(self, symbol: str) -> str:
        """The venue's spelling of ``symbol``, or `InvalidSymbolError` naming it and the venue.

        A symbol becomes part of lake paths, URLs and subscriptions, so anything outside the
        venue's alphabet is refused here, once.
        """
        if self.name in ("binance", "coinbase"):  # the lake's original two keep one rule
            return _schema_symbol(symbol, self.name)
        if not isinstance(symbol, str):
            raise InvalidSymbolError(f"symbol must be a string, got {type(symbol).__name__}")
        candidate = symbol.strip().upper()
        if self.fixup is not None:
            candidate = self.fixup(candidate)
        if not self.syntax.fullmatch(candidate):
            raise InvalidSymbolError(
                f"invalid {self.title} instrument {symbol!r}: expected like {self.example}"
            )
        return candidate

    def accepts(self, symbol: str) -> bool:
        """Whether ``symbol`` is spelled as an instrument of this venue."""
        try:
            self.normalize_symbol(symbol)
        except InvalidSymbolError:
            return False
        return True

    def feed(self, **options: object) -> Feed:
        """The venue's `Feed` (options go to its constructor)."""
        module_name, _, attribute = self.feed_factory.partition(":")
        factory = getattr(importlib.import_module(module_name), attribute)
        return factory(**options)


def _deribit_fixup(candidate: str) -> str:
    """Deribit writes a decimal strike with a lower-case ``d`` (``XRP_USDC-30JUN23-0d625-C``)."""
    parts = candidate.split("-")
    if len(parts) == 4:
        parts[2] = parts[2].replace("D", "d")
    return "-".join(parts)


BINANCE: Final = Venue(
    name="binance",
    title="Binance",
    syntax=re.compile(r"[A-Z0-9]{2,20}"),
    example="BTCUSDT",
    ws=Endpoint("wss://stream.binance.com:9443", "MARKETLAKE_BINANCE_WS_URL"),
    rest=Endpoint("https://api.binance.com", "MARKETLAKE_BINANCE_REST_URL"),
    # "WebSocket Limits": 1024 streams and 5 incoming messages/s per connection, 300
    # connection attempts per 5 minutes per IP, every connection cut at 24 hours.
    limits=Limits(1024, 5.0, (300, 300.0), max_connection_age_s=24 * 3600.0),
    feed_factory="marketlake.exchanges.binance.websocket:BinanceFeed",
    gap_fill="REST /api/v3/historicalTrades by trade id",
    channels=("trade", "bookTicker", "depth20@100ms"),
    instruments=InstrumentList(
        ("/api/v3/exchangeInfo",), "marketlake.instrument_specs:parse_binance_exchange_info"
    ),
    history=("archive", "rest"),
    history_detail="the daily archive (checksum-verified), REST /api/v3/historicalTrades",
)

COINBASE: Final = Venue(
    name="coinbase",
    title="Coinbase",
    syntax=re.compile(r"[A-Z0-9]{2,10}-[A-Z0-9]{2,10}"),
    example="BTC-USD",
    ws=Endpoint("wss://advanced-trade-ws.coinbase.com", "MARKETLAKE_COINBASE_WS_URL"),
    rest=None,
    # Advanced Trade: unauthenticated clients 8 messages/s per IP; 750 connections/s per IP.
    limits=Limits(50, 8.0, (750, 1.0)),
    feed_factory="marketlake.exchanges.coinbase.websocket:CoinbaseFeed",
    gap_fill=None,
    channels=("market_trades", "ticker", "level2"),
    instruments=InstrumentList(
        ("/api/v3/brokerage/market/products",),
        "marketlake.instrument_specs:parse_coinbase_products",
        "https://api.coinbase.com",
    ),
)

OKX: Final = Venue(
    name="okx",
    title="OKX",
    # SPOT BTC-USDT, SWAP BTC-USDT-SWAP, FUTURES BTC-USD-220527, OPTION BTC-USD-220527-30000-C
    syntax=re.compile(r"[A-Z0-9]{1,15}-[A-Z0-9]{1,15}(-[A-Z0-9]{1,15}){0,3}"),
    example="BTC-USDT or BTC-USDT-SWAP",
    ws=Endpoint("wss://ws.okx.com:8443/ws/v5/public", "MARKETLAKE_OKX_WS_URL"),
    rest=Endpoint("https://www.okx.com", "MARKETLAKE_OKX_REST_URL"),
    # v5 "Connect": 3 connection requests/s per IP; subscribe/unsubscribe/login 480 per
    # hour per connection; a connection with no data for 30 s is cut (hence the "ping").
    # REST: market/history-trades 20 requests per 2 s per IP.
    limits=Limits(100, 2.0, (3, 1.0), idle_cutoff_s=30.0, rest_requests_per_s=10.0),
    feed_factory="marketlake.exchanges.okx.feed:OkxFeed",
    gap_fill="REST /api/v5/market/history-trades by trade id",
    channels=("trades", "bbo-tbt", "books"),
    instruments=InstrumentList(
        tuple(f"/api/v5/public/instruments?instType={t}" for t in ("SPOT", "SWAP", "FUTURES")),
        "marketlake.instrument_specs:parse_okx_instruments",
    ),
    history=("rest",),
    history_detail="REST /api/v5/market/history-trades (about the last three months)",
)

DERIBIT: Final = Venue(
    name="deribit",
    title="Deribit",
    # BTC-PERPETUAL, BTC-24SEP21-8000-P, ETH-30JUL21, BTC_USDC, XRP_USDC-30JUN23-0d625-C
    syntax=re.compile(
        r"[A-Z0-9]{2,12}(_[A-Z0-9]{2,12})?(-[A-Z0-9]{1,12}(-[A-Z0-9d]{1,12}-[CP])?)?"
    ),
    example="BTC-PERPETUAL",
    ws=Endpoint("wss://www.deribit.com/ws/api/v2", "MARKETLAKE_DERIBIT_WS_URL"),
    rest=Endpoint("https://www.deribit.com", "MARKETLAKE_DERIBIT_REST_URL"),
    # Public requests are credit-limited (about 20/s sustained); a connection that asked for
    # heartbeats is closed when a test_request goes unanswered.
    limits=Limits(100, 5.0, (20, 1.0), rest_requests_per_s=20.0),
    feed_factory="marketlake.exchanges.deribit.feed:DeribitFeed",
    gap_fill="REST public/get_last_trades_by_instrument by trade_seq",
    channels=("trades.{}.raw", "quote.{}", "book.{}.raw"),
    fixup=_deribit_fixup,
    instruments=InstrumentList(
        ("/api/v2/public/get_instruments?currency=any",),
        "marketlake.instrument_specs:parse_deribit_instruments",
    ),
    history=("rest",),
    history_detail="REST public/get_last_trades_by_instrument_and_time",
)

#: Every venue by name, in the order commands list them.
VENUES: Final[dict[str, Venue]] = {v.name: v for v in (BINANCE, COINBASE, OKX, DERIBIT)}


def venue(name: str) -> Venue:
    """The venue called ``name`` (any case), or a `ValueError` listing the known ones."""
    found = VENUES.get(name.strip().lower()) if isinstance(name, str) else None
    if found is None:
        known = ", ".join(VENUES)
        raise ValueError(f"no websocket feed for exchange {name!r}: expected {known}")
    return found


__all__ = [
    "BINANCE",
    "COINBASE",
    "DERIBIT",
    "OKX",
    "VENUES",
    "Endpoint",
    "InstrumentList",
    "Limits",
    "Venue",
    "venue",
]
