"""The lander: frames in, buffered rows, events and gap fills out. Lives on the event loop.

`Lander.frame` is the per-frame hot path: stamp, (capture), parse, then per record a type
check, a dedupe check against a per-symbol watermark, and a few ``list.append`` calls into
the columnar buffers. Everything else (gap fills, flush scheduling, status) runs in its own
task and only touches the buffers between frames, so no lock is needed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import orjson
import polars as pl

from marketlake.exchanges.book import BOOK_RESYNCED, BookEvent
from marketlake.exchanges.feed import (
    Depth,
    GapFiller,
    Parser,
    Quote,
    Reject,
    Resync,
    Send,
    Trade,
    payload_text,
)
from marketlake.exchanges.recording import capture_line
from streaming import buffers
from streaming.config import StreamConfig, StreamStats
from streaming.gaps import Gap, TradeSequencer
from streaming.state import now_us

log = logging.getLogger(__name__)

MAX_FILL_ATTEMPTS = 5
MAX_REASONS = 256


class Lander:
    """Buffers rows of one exchange's stream and keeps its trade id bookkeeping."""

    def __init__(
        self,
        config: StreamConfig,
        exchange: str,
        *,
        trade_ids_contiguous: bool,
        book_ids_monotonic: bool,
        stats: StreamStats,
        filler: GapFiller | None,
        capture: IO[bytes] | None = None,
    ) -> None:
        self.config = config
        self.exchange = exchange
        self.stats = stats
        self.filler = filler
        self.buffers = buffers.Buffers()
        self.sequencer = TradeSequencer(config.gap_grace_s)
        self._contiguous = trade_ids_contiguous
        self._book_ids_monotonic = book_ids_monotonic
        self._quote_ids: dict[str, int] = {}
        self._depth_ids: dict[str, int] = {}
        self._capture = capture
        self._filling: list[Gap] = []
        self._unfilled: list[Gap] = []
        self._fill_slots = asyncio.Semaphore(2)
        self._fill_tasks: set[asyncio.Task[None]] = set()
        self.last_trade: Trade | None = None
        self._resumed: dict[str, int] = {}  # symbol -> last id of the checkpoint
        self._held: dict[str, _Held] = {}  # symbol -> trades far past its sequence
        self._max_jump = config.hold_id_jump
        self._confirm = config.confirm_id_jump

    # --- the hot path -------------------------------------------------------------------------

    def frame(
        self, conn: str, parser: Parser, raw: bytes, received_at_us: int
    ) -> Resync | Send | None:
        """Land one frame; what the connection must do next, if anything.

        A `Resync` (the connection must be replaced) wins over a `Send` (frames to send on
        it: a heartbeat answer, a book resubscription), which a replacement makes moot.
        """
        stats = self.stats
        stats.messages += 1
        stats.bytes += len(raw)
        if self._capture is not None:
            self._write_capture(received_at_us, raw, conn)
        try:
            records = parser.parse(raw, received_at_us)
        except Exception as error:  # a parser bug must not stop the stream either
            reason = f"parser error: {type(error).__name__}: {error}"[:300]
            records = [Reject(reason, payload_text(raw), received_at_us)]
        resync: Resync | Send | None = None
        for record in records:
            if type(record) is Trade:
                self._trade(record, conn)
            elif type(record) is Quote:
                if self._book_ids_monotonic and self._repeated(
                    self._quote_ids, record.symbol, record.update_id
                ):
                    continue
                self.buffers.quotes.add(record)
            elif type(record) is Depth:
                if self._book_ids_monotonic and self._repeated(
                    self._depth_ids, record.symbol, record.last_update_id
                ):
                    continue
                self.buffers.depth.add(record)
            elif type(record) is Reject:
                self.quarantine(record)
            elif type(record) is Resync:
                resync = record
            elif type(record) is BookEvent:
                self.book_event(record)
            elif type(record) is Send:
                if resync is None:
                    resync = record
                elif type(resync) is Send:
                    first, then = (record, resync) if record.urgent else (resync, record)
                    urgent = resync.urgent or record.urgent
                    resync = Send(first.messages + then.messages, first.reason, urgent)
        return resync

    def book_event(self, event: BookEvent) -> None:
        """A book left sync (no depth row until it is back) or came back: `stream_events`."""
        if event.kind == BOOK_RESYNCED:
            self.stats.book_resyncs += 1
        else:
            self.stats.book_breaks += 1
        self.event(event.kind, event.detail(), event.instrument)

    def _repeated(self, last_ids: dict[str, int], symbol: str, update_id: int | None) -> bool:
        """Book update ids only grow: one at or below the last seen was landed already."""
        if update_id is None:
            return False
        last = last_ids.get(symbol)
        if last is not None and update_id <= last:
            self.stats.duplicates += 1
            return True
        last_ids[symbol] = update_id
        return False

    def _write_capture(self, received_at_us: int, raw: bytes, conn: str) -> None:
        try:
            self._capture.write(capture_line(received_at_us, raw, conn))  # type: ignore[union-attr]
        except (OSError, ValueError) as error:  # disk full, closed: landing matters more
            self._capture = None
            self.stats.last_error = f"capture stopped: {error}"[:500]
            self.event("capture_stopped", {"error": str(error)[:300]})

    def _trade(self, trade: Trade, conn: str) -> None:
        if self._contiguous:
            last_ids = self.sequencer.last
            last = last_ids.get(trade.symbol)
            if last is not None and trade.trade_id == last + 1:
                last_ids[trade.symbol] = trade.trade_id
                if self._held and trade.symbol in self._held:
                    self._old_sequence_went_on(trade.symbol)
            else:
                if (
                    last is not None
                    and (trade.symbol in self._held or trade.trade_id > last + self._max_jump)
                    and self._hold(trade, last, conn)
                ):
                    return
                if not self._in_sequence(trade, last, conn):
                    return
        self.buffers.trades.add(trade)
        self.last_trade = trade

    def _in_sequence(self, trade: Trade, last: int | None, conn: str) -> bool:
        """Whether a trade that is not ``last + 1`` lands (a repeat doesn't); records gaps."""
        if last is not None and self._resumed.pop(trade.symbol, None) == last:
            cause = "ids since the checkpoint (restart)"
        else:
            cause = f"id jump on connection {conn}"
        keep, gap = self.sequencer.observe(trade.symbol, trade.trade_id, time.monotonic(), cause)
        if gap is not None:
            self._gap_found(gap)
        if not keep:
            self.stats.duplicates += 1
        return keep

    # --- trade ids far past the sequence ------------------------------------------------------

    def _hold(self, trade: Trade, last: int, conn: str) -> bool:
        """True if `trade` is held (far past the sequence, or continuing what is held).

        One bogus id landed would move the watermark past every real trade to come, and
        they would all be dropped as repeats. So a far jump waits: more trades continuing
        from it confirm it (a reconnect after an outage), and it lands with its gap; as
        many trades continuing the old sequence refute it, and it goes to `quarantine`.
        Held trades are never in the checkpoint.
        """
        symbol = trade.symbol
        held = self._held.get(symbol)
        if held is None:
            self._held[symbol] = _Held([trade], last)
            self.event("id_jump_held", _jump(trade.trade_id, last, conn), symbol)
            return True
        newest = held.trades[-1].trade_id
        if newest < trade.trade_id <= newest + self._max_jump:
            held.trades.append(trade)
            if len(held.trades) > self._confirm:
                self._land_held(symbol, conn)
            return True
        if trade.trade_id <= last + self._max_jump:
            if trade.trade_id > last:
                self._old_sequence_went_on(symbol)
            return False  # the old sequence: lands, or is a repeat, as usual
        self._refuse_held(symbol, "another jump followed it")
        self._held[symbol] = _Held([trade], last)
        self.event("id_jump_held", _jump(trade.trade_id, last, conn), symbol)
        return True

    def _old_sequence_went_on(self, symbol: str) -> None:
        held = self._held[symbol]
        held.against += 1
        if held.against >= self._confirm:
            self._refuse_held(symbol, f"{held.against} later trades continued the sequence")

    def _land_held(self, symbol: str, conn: str) -> None:
        held = self._held.pop(symbol)
        last = self.sequencer.last.get(symbol, held.last)
        first = held.trades[0].trade_id
        self.event(
            "id_jump_confirmed", {**_jump(first, last, conn), "trades": len(held.trades)}, symbol
        )
        for trade in held.trades:
            if self._in_sequence(trade, self.sequencer.last.get(symbol), conn):
                self.buffers.trades.add(trade)
                self.last_trade = trade

    def _refuse_held(self, symbol: str, why: str) -> None:
        held = self._held.pop(symbol)
        first = held.trades[0].trade_id
        reason = (
            f"trade id outlier: {first} is {first - held.last:,} ids past {symbol}'s "
            f"sequence at {held.last}; {why}"
        )
        for trade in held.trades:
            self.quarantine(
                Reject(reason, orjson.dumps(trade._asdict()).decode(), trade.received_at_us, symbol)
            )
        self.stats.outliers += len(held.trades)
        ids = [trade.trade_id for trade in held.trades]
        self.event(
            "id_outlier",
            {"trade_ids": ids[:20], "count": len(ids), "last_id": held.last, "why": why},
            symbol,
        )

    def settle_held(self) -> None:
        """At shutdown: what is still held was never confirmed; it goes to `quarantine`.

        The checkpoint keeps the last id of the sequence, so if the jump was real a restart
        fills the range from REST (or the daily backfill does).
        """
        for symbol in list(self._held):
            self._refuse_held(symbol, "not confirmed by later trades before the stream stopped")

    @property
    def held_count(self) -> int:
        return sum(len(held.trades) for held in self._held.values())

    # --- quarantine and events ----------------------------------------------------------------

    def quarantine(self, rejected: Reject) -> None:
        stats = self.stats
        stats.quarantined += 1
        reasons = stats.quarantine_reasons
        key = (
            rejected.reason if rejected.reason in reasons or len(reasons) < MAX_REASONS else "other"
        )
        reasons[key] = reasons.get(key, 0) + 1
        self.buffers.quarantine.add(
            (rejected.received_at_us, rejected.symbol, rejected.reason, rejected.payload)
        )

    def event(self, kind: str, detail: dict[str, Any], symbol: str | None = None) -> None:
        """A row of `stream_events`; connection events also move the counters."""
        if kind == "reconnect":
            self.stats.reconnects += 1
        elif kind == "disconnect":
            self.stats.disconnects += 1
        log.info("%s %s %s", kind, symbol or "", detail)
        self.buffers.events.add((now_us(), symbol, kind, orjson.dumps(detail).decode()))

    # --- gaps ---------------------------------------------------------------------------------

    def resume(self, state: dict[str, Any] | None, symbols: Sequence[str]) -> None:
        """Continue from the state file: trade ids after the last landed one get filled."""
        if not state or not self._contiguous:
            return
        now = time.monotonic()
        for symbol in symbols:
            entry = state.get("symbols", {}).get(symbol)
            if not entry or entry.get("last_trade_id") is None:
                continue
            gaps = [(int(a), int(b)) for a, b in entry.get("open_gaps", [])]
            self.sequencer.resume(symbol, int(entry["last_trade_id"]), gaps, now)
            self._resumed[symbol] = int(entry["last_trade_id"])
            self.event(
                "resume",
                {"last_trade_id": int(entry["last_trade_id"]), "open_gaps": gaps},
                symbol,
            )

    def _gap_found(self, gap: Gap) -> None:
        self.stats.gaps += 1
        self.event(
            "gap",
            {
                "first_id": gap.first_id,
                "last_id": gap.last_id,
                "count": gap.count,
                "cause": gap.cause,
            },
            gap.symbol,
        )

    def start_due_fills(self, *, all_now: bool = False) -> None:
        """Hand every gap whose grace is over to a fill task (or record why it can't be).

        ``all_now`` ignores the grace: at shutdown no late frame can arrive any more.
        """
        for gap in self.sequencer.due(float("inf") if all_now else time.monotonic()):
            if self.filler is None:
                self.stats.gaps_not_filled += 1
                self.event(
                    "gap_not_filled",
                    {**_range(gap), "why": "no REST filler for this exchange"},
                    gap.symbol,
                )
                continue
            if gap.count > self.config.max_gap_fill:
                why = f"more than {self.config.max_gap_fill} ids: left to the daily backfill"
                self.stats.gaps_not_filled += 1
                self.event("gap_not_filled", {**_range(gap), "why": why}, gap.symbol)
                continue
            self._filling.append(gap)
            task = asyncio.create_task(
                self._fill(gap), name=f"gap-fill-{gap.symbol}-{gap.first_id}"
            )
            self._fill_tasks.add(task)
            task.add_done_callback(self._fill_tasks.discard)

    async def _fill(self, gap: Gap) -> None:
        try:
            async with self._fill_slots:
                started = time.monotonic()
                try:
                    raw = await asyncio.to_thread(
                        self.filler.trades_between_ids,  # type: ignore[union-attr]
                        gap.symbol,
                        gap.first_id,
                        gap.last_id,
                    )
                except Exception as error:
                    self._fill_failed(gap, f"{type(error).__name__}: {error}"[:300])
                    return
        except asyncio.CancelledError:
            # Shutting down mid-fill: the range stays open in the checkpoint for the next start.
            self.sequencer.put_back(gap)
            raise
        finally:
            self._filling.remove(gap)
        raw = raw.filter(pl.col("trade_id").is_between(gap.first_id, gap.last_id)).unique(
            "trade_id", keep="first", maintain_order=True
        )
        if raw.height:
            self.buffers.rest_trades.append(
                buffers.rest_trades_frame(raw, gap.symbol, self.exchange, now_us())
            )
        self.stats.gap_rows_filled += raw.height
        missing = _missing_ranges(raw.get_column("trade_id").to_numpy(), gap.first_id, gap.last_id)
        elapsed_ms = round((time.monotonic() - started) * 1000, 1)
        detail = {**_range(gap), "rows": raw.height, "ms": elapsed_ms}
        if not missing:
            self.stats.gaps_filled += 1
            self.event("gap_filled", detail, gap.symbol)
            return
        detail["still_missing"] = missing[:20]
        self.event("gap_partly_filled", detail, gap.symbol)
        for first_id, last_id in missing:
            piece = Gap(gap.symbol, first_id, last_id, 0.0, gap.cause, gap.attempts)
            self._fill_failed(piece, "REST returned fewer trades than asked for")

    def _fill_failed(self, gap: Gap, error: str) -> None:
        gap.attempts += 1
        if gap.attempts < MAX_FILL_ATTEMPTS:
            gap.due = time.monotonic() + min(30.0, 0.5 * 2**gap.attempts)
            self.sequencer.put_back(gap)
            self.event(
                "gap_fill_retry",
                {**_range(gap), "attempt": gap.attempts, "error": error},
                gap.symbol,
            )
        else:
            self._unfilled.append(gap)
            self.stats.gap_fills_failed += 1
            self.event(
                "gap_fill_failed",
                {**_range(gap), "attempts": gap.attempts, "error": error},
                gap.symbol,
            )

    async def wait_for_fills(self, timeout_s: float) -> None:
        """Fill what is still missing (rows join the last flush); cancel what isn't done in time."""
        self.start_due_fills(all_now=True)
        tasks = set(self._fill_tasks)
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    # --- flushing -----------------------------------------------------------------------------

    def open_gaps(self) -> dict[str, list[tuple[int, int]]]:
        ranges = self.sequencer.open_ranges()
        for gap in [*self._filling, *self._unfilled]:
            ranges.setdefault(gap.symbol, []).append((gap.first_id, gap.last_id))
        return {symbol: sorted(r) for symbol, r in ranges.items()}

    def take(self) -> buffers.Taken:
        """Swap out everything buffered, with the checkpoint it makes true once written.

        Every trade accepted so far is in this flush or an earlier one, so the watermark
        (`sequencer.last`) plus the ranges still missing describe exactly what has landed
        when this flush has.
        """
        if self._capture is not None:
            self._capture.flush()
        taken = self.buffers.take()
        gaps = self.open_gaps()
        symbols = {
            symbol: {"last_trade_id": last, "open_gaps": [list(r) for r in gaps.get(symbol, [])]}
            for symbol, last in self.sequencer.last.items()
        }
        last = self.last_trade
        taken.checkpoint = {
            "symbols": symbols,
            "receive_lag_ms": None if last is None else (last.received_at_us - last.ts_us) / 1000,
        }
        return taken


@dataclass
class _Held:
    """Trades far past a symbol's sequence, waiting for later trades to confirm or refute."""

    trades: list[Trade]
    #: the sequence's last id when the first was held
    last: int
    #: trades since that continued the old sequence
    against: int = 0


def _jump(trade_id: int, last: int, conn: str) -> dict[str, Any]:
    return {"trade_id": trade_id, "last_id": last, "jump": trade_id - last, "connection": conn}


def _range(gap: Gap) -> dict[str, int]:
    return {"first_id": gap.first_id, "last_id": gap.last_id, "count": gap.count}


def _missing_ranges(ids: np.ndarray, first_id: int, last_id: int) -> list[tuple[int, int]]:
    """Inclusive ranges of first_id..last_id absent from ``ids`` (unique, any order)."""
    if len(ids) == last_id - first_id + 1:
        return []
    present = np.sort(ids.astype(np.int64))
    bounds = np.concatenate(([first_id - 1], present, [last_id + 1]))
    starts = np.flatnonzero(np.diff(bounds) > 1)
    return [(int(bounds[i]) + 1, int(bounds[i + 1]) - 1) for i in starts]
