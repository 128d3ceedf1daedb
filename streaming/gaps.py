"""Trade id bookkeeping: which ids are new, which are repeats, and which are missing.

Where an exchange's trade ids run +1 per symbol, a jump is a lost trade (a reconnect, a
dropped frame, a restart). Missing ranges wait ``grace`` seconds before being fetched from
REST, because during a rollover both connections deliver the same trades and the slower one
may still bring them; an id arriving late inside a missing range is landed and cut out of
the range. Anything at or below the watermark and outside a missing range is a repeat and
is not landed twice.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Gap:
    """Missing trade ids ``first_id..last_id`` (inclusive) of one symbol."""

    symbol: str
    first_id: int
    last_id: int
    #: monotonic seconds after which it may be fetched
    due: float
    cause: str
    attempts: int = 0

    @property
    def count(self) -> int:
        return self.last_id - self.first_id + 1


class TradeSequencer:
    """Per-symbol watermark of trade ids plus the ranges below it that are still missing.

    `last` is public so the lander's hot path can test ``trade_id == last + 1`` itself and
    only call `observe` for the rare cases.
    """

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.last: dict[str, int] = {}
        self.missing: dict[str, list[Gap]] = {}

    def resume(
        self, symbol: str, last_id: int, open_ranges: list[tuple[int, int]], now: float
    ) -> None:
        """Continue from a checkpoint: ids after ``last_id`` and the open ranges are due now."""
        self.last[symbol] = last_id
        for first_id, last in open_ranges:
            self._add(Gap(symbol, first_id, last, now, "unfilled before restart"))

    def observe(
        self, symbol: str, trade_id: int, now: float, cause: str
    ) -> tuple[bool, Gap | None]:
        """(land it?, a newly found gap or None) for a trade id that is not ``last + 1``."""
        last = self.last.get(symbol)
        if last is None:
            self.last[symbol] = trade_id
            return True, None
        if trade_id > last + 1:
            gap = Gap(symbol, last + 1, trade_id - 1, now + self.grace_s, cause)
            self._add(gap)
            self.last[symbol] = trade_id
            return True, Gap(symbol, gap.first_id, gap.last_id, gap.due, cause)
        if trade_id == last + 1:
            self.last[symbol] = trade_id
            return True, None
        return self._late(symbol, trade_id), None

    def _add(self, gap: Gap) -> None:
        self.missing.setdefault(gap.symbol, []).append(gap)

    def _late(self, symbol: str, trade_id: int) -> bool:
        """Cut a late id out of its missing range; False if it was never missing (a repeat)."""
        gaps = self.missing.get(symbol)
        if not gaps:
            return False
        for index, gap in enumerate(gaps):
            if gap.first_id <= trade_id <= gap.last_id:
                pieces = []
                if gap.first_id < trade_id:
                    pieces.append(
                        Gap(symbol, gap.first_id, trade_id - 1, gap.due, gap.cause, gap.attempts)
                    )
                if trade_id < gap.last_id:
                    pieces.append(
                        Gap(symbol, trade_id + 1, gap.last_id, gap.due, gap.cause, gap.attempts)
                    )
                gaps[index : index + 1] = pieces
                if not gaps:
                    del self.missing[symbol]
                return True
        return False

    def due(self, now: float) -> list[Gap]:
        """Remove and return the ranges whose grace is over (the caller fills or re-adds them)."""
        ready: list[Gap] = []
        for symbol in list(self.missing):
            gaps = self.missing[symbol]
            keep = [gap for gap in gaps if gap.due > now]
            ready.extend(gap for gap in gaps if gap.due <= now)
            if keep:
                self.missing[symbol] = keep
            else:
                del self.missing[symbol]
        return ready

    def put_back(self, gap: Gap) -> None:
        """Re-queue a range whose fill failed or was partial (``gap.due`` set by the caller)."""
        self._add(gap)

    def open_ranges(self) -> dict[str, list[tuple[int, int]]]:
        """Every missing range still waiting, by symbol (for the checkpoint)."""
        return {
            symbol: [(gap.first_id, gap.last_id) for gap in gaps]
            for symbol, gaps in self.missing.items()
            if gaps
        }
