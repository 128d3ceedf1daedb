"""The websocket side's fault knobs and its record of what it sent.

`WsFaults` is read on every tick, so a test may change it while connections are open;
`WsStats` is the ground truth a test compares the lake against ("what the stream delivered").
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class WsFaults:
    """What the websocket side gets wrong; all off by default, changeable while running."""

    #: Cut every connection this many seconds after it opened (abruptly, no close frame).
    drop_every_s: float | None = None
    #: Trade ids never sent (the trades still happen: REST and the archive have them).
    skip_trade_ids: set[int] = field(default_factory=set)
    #: Never send trades whose id is a multiple of this.
    skip_every: int | None = None
    #: After every N-th frame, send one malformed frame (cycling through kinds of bad input).
    malformed_every: int | None = None
    #: Per connection: after this many seconds, send nothing for ``stall_for_s`` (the trades
    #: of the stall are lost, the socket stays open).
    stall_after_s: float | None = None
    stall_for_s: float = 0.0
    #: Send every trade whose id is a multiple of this twice.
    duplicate_every: int | None = None
    #: Binance: announce ``serverShutdown`` this many seconds after a connection opened, then
    #: close it ``shutdown_grace_s`` later (as the real server does before maintenance).
    server_shutdown_after_s: float | None = None
    shutdown_grace_s: float = 2.0
    #: Binance: pending (symbol, jump) pairs; each sends ONE well-formed trade of that symbol
    #: whose id is ``jump`` past the last id sent (a bogus id: no such trade ever happens),
    #: after the symbol's next trade, and is then removed. Counted in `WsStats.bogus`.
    bogus_trades: list[tuple[str, int]] = field(default_factory=list)
    #: OKX and Deribit: the next N book updates are not sent (the session's book still moves
    #: on, so the next update no longer chains: a lost update, as on the wire).
    drop_book_updates: int = 0
    #: OKX: the next N book updates carry a checksum their book does not have.
    bad_book_checksums: int = 0

    def take(self, knob: str) -> bool:
        """Consume one of a countdown fault (``drop_book_updates``, ``bad_book_checksums``)."""
        left = getattr(self, knob)
        if left > 0:
            setattr(self, knob, left - 1)
            return True
        return False


@dataclass
class WsStats:
    connections: int = 0
    frames: int = 0
    malformed: int = 0
    #: Every malformed frame sent, in order (what a lander's quarantine should hold).
    malformed_frames: list[bytes] = field(default_factory=list)
    drops: int = 0
    refused: int = 0
    #: symbol -> bogus trade ids sent (`WsFaults.bogus_trades`)
    bogus: dict[str, list[int]] = field(default_factory=dict)
    #: symbol -> trade ids sent (the ground truth of "what the stream delivered")
    sent_trade_ids: dict[str, set[int]] = field(default_factory=dict)
    skipped_trade_ids: dict[str, set[int]] = field(default_factory=dict)
    #: OKX / Deribit books: snapshots sent, updates dropped and checksums spoiled (faults).
    book_snapshots: int = 0
    book_updates: int = 0
    book_updates_dropped: int = 0
    bad_checksums_sent: int = 0
    #: Deribit: connections closed because a heartbeat test_request went unanswered.
    heartbeat_timeouts: int = 0

    def sent(self, symbol: str, trade_id: int) -> None:
        self.sent_trade_ids.setdefault(symbol, set()).add(trade_id)

    def skipped(self, symbol: str, trade_id: int) -> None:
        self.skipped_trade_ids.setdefault(symbol, set()).add(trade_id)
