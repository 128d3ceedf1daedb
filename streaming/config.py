"""What a stream run is told (`StreamConfig`) and reports (`StreamStatus`, `StreamStats`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class StreamConfig:
    """One landing service: an exchange, its symbols, where to read and where to land.

    Only ``exchange``, ``symbols``, ``ws_url`` and ``lake`` are required; the defaults are the
    production settings (1 s / 100k-row flushes, Binance's connection limits).
    """

    exchange: str
    symbols: Sequence[str]
    ws_url: str
    lake: str
    #: Base URL of the exchange's REST API, for gap fills; None disables filling.
    rest_url: str | None = None
    lake_storage_options: Mapping[str, str] = field(default_factory=dict)
    #: Stop after this many seconds, or at this time (whichever comes first); None = until stopped.
    duration_s: float | None = None
    until: dt.datetime | None = None
    flush_interval_s: float = 1.0
    flush_rows: int = 100_000
    #: Write every raw frame with its receive time here (the replay format), or None.
    capture: Path | None = None
    status_callback: Callable[[StreamStatus], Any] | None = None
    status_interval_s: float = 5.0
    #: Distinguishes processes landing the same exchange (the state file name); default exchange.
    name: str | None = None
    #: Options for the exchange's `Feed` (e.g. ``{"channels": ("trade",)}``).
    feed_options: Mapping[str, Any] = field(default_factory=dict)
    #: REST request weight per minute shared by every gap fill of this run.
    rest_weight_limit: int = 6000
    #: The exchange's rate-limit budget object to share with other clients (e.g. a backfill's
    #: `WeightBudget`); None = a budget of ``rest_weight_limit`` for this run.
    rest_budget: object | None = None
    #: Wait this long for late frames to close a gap before filling it from REST.
    gap_grace_s: float = 1.0
    #: Larger gaps (e.g. after days offline) are left to the daily backfill, not REST.
    max_gap_fill: int = 1_000_000
    #: A trade id more than this past its symbol's sequence is held, not landed, until
    #: ``confirm_id_jump`` more trades continue from it (a real jump: a reconnect after an
    #: outage); if as many trades continue the old sequence first, it is quarantined as an
    #: outlier. 10,000 ids is ten seconds of Binance's busiest bursts: a jump that size
    #: waits two trades, while one bogus id can never push the watermark past real trades.
    hold_id_jump: int = 10_000
    confirm_id_jump: int = 2
    #: Connection behaviour (None = the feed's own value).
    silence_timeout_s: float | None = None
    max_connection_age_s: float | None = None
    #: Open the replacement this long before the exchange's age limit.
    rollover_margin_s: float = 600.0
    reconnect_base_s: float = 0.25
    reconnect_cap_s: float = 30.0
    #: Connection attempts allowed per window across all shards (Binance: 300 per 5 min per IP).
    connect_attempts: int = 300
    connect_window_s: float = 300.0
    #: Delay between the first connection of consecutive shards.
    shard_stagger_s: float = 0.2
    #: Install SIGTERM/SIGINT handlers (only possible in the main thread; off inside Dagster).
    handle_signals: bool = True
    #: Seconds the final flush keeps retrying a failing lake before giving up (rows are spilled).
    shutdown_timeout_s: float = 30.0
    #: Where rows go if the lake stays unwritable at shutdown (default: {lake}/_spill, local only).
    spill_dir: Path | None = None

    @property
    def stream_name(self) -> str:
        return self.name or self.exchange


@dataclass
class StreamStatus:
    """A snapshot for the status callback, every ``status_interval_s``."""

    elapsed_s: float
    messages: int
    messages_per_s: float
    rows_landed: dict[str, int]
    pending_rows: int
    #: Receive time minus exchange time of the newest trade (network + exchange delay).
    receive_lag_ms: float | None
    #: Commit time minus receive time of the newest row landed (what batching costs).
    land_lag_ms: float | None
    connections: int
    reconnects: int
    gaps: int
    gaps_filled: int
    quarantined: int
    duplicates: int
    write_errors: int
    last_error: str | None
    #: Trade ids far past their sequence: quarantined, and still held for confirmation.
    outliers: int = 0
    held: int = 0
    #: Order books that left sync (gap, checksum, unreadable update) and that came back.
    book_breaks: int = 0
    book_resyncs: int = 0

    @property
    def drops(self) -> str:
        """What was not landed, for a status line: repeats, id outliers and held trades."""
        return f"dropped {self.duplicates} repeats, {self.outliers} id outliers ({self.held} held)"


@dataclass
class StreamStats:
    """What a finished run did; also the final content of the state file's counts."""

    messages: int = 0
    bytes: int = 0
    rows_landed: dict[str, int] = field(default_factory=dict)
    reconnects: int = 0
    disconnects: int = 0
    gaps: int = 0
    gaps_filled: int = 0
    gap_rows_filled: int = 0
    #: Gaps not fetched from REST (no filler, or larger than ``max_gap_fill``: left to the
    #: daily backfill), and ranges given up after `streaming.lander.MAX_FILL_ATTEMPTS` fills.
    gaps_not_filled: int = 0
    gap_fills_failed: int = 0
    quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    #: Trades quarantined because their id was far past the sequence, which went on without.
    outliers: int = 0
    #: Order books that left sync (a gap, a checksum mismatch, an unreadable update), and
    #: resyncs from a fresh snapshot; no depth row is landed in between.
    book_breaks: int = 0
    book_resyncs: int = 0
    write_errors: int = 0
    #: Flushes landed, and the Delta commits that landed them: a writer behind its flushes
    #: commits the queued ones together (one commit per table), counted in flushes_grouped.
    flushes: int = 0
    commits: int = 0
    flushes_grouped: int = 0
    last_error: str | None = None
    #: Rows that could not be written by shutdown, and where they were spilled.
    unwritten_rows: int = 0
    spilled: list[str] = field(default_factory=list)
    #: Of those, the rows of a commit still running when the writer's deadline passed: they
    #: may be in the table as well (all or none), in the ``*-maybe-landed`` files listed here.
    maybe_landed_rows: int = 0
    spilled_maybe_landed: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    last_trade_id: dict[str, int] = field(default_factory=dict)
