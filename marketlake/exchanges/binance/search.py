"""Find the first trade id at or after a time, in a handful of historicalTrades requests.

Binance pages trades by id only (`historicalTrades?fromId=`), yet a backfill starts from a
date. Trade ids are contiguous and times never decrease with the id, so the id of a time
can be searched like a root: regula falsi on (id, time - target) between the best known
ids below and above the target, with the Illinois weighting so a far bound (the latest
trade) can't hold the estimate back; near a bound, extrapolation with the trade rate
measured inside the last 1000-row page (intensity is smooth over minutes, not over
years); and bisection whenever two probes in a row fail to halve the interval, which
bounds the worst case at about twice binary search. Every probe asks for a full page
(the weight is the same for 1 or 1000 rows), so the answer is usually read straight off
a page that straddles the target. On the simulator's even market a search takes 3
requests; on a synthetic market with 300x swings in daily volume, bursts and id holes,
about 8 on average and under 30 at worst.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import polars as pl

if TYPE_CHECKING:
    from marketlake.exchanges.binance.rest import BinanceRest

PAGE: Final = 1000
#: Farthest (in ids) a probe is placed by extrapolating a page's own trade rate; beyond
#: that the rate says little and interpolation between the bounds is safer.
LOCAL_REACH: Final = 20 * PAGE


@dataclass(frozen=True)
class _Page:
    """One historicalTrades response reduced to what the search needs (ms times)."""

    ids: list[int]
    times: list[int]
    #: The request's fromId: no trade exists in [from_id, ids[0]).
    from_id: int | None

    @property
    def rate(self) -> float | None:
        """Trades per millisecond inside the page, None when it spans no time."""
        span = self.times[-1] - self.times[0]
        return (len(self.ids) - 1) / span if span > 0 else None


@dataclass(frozen=True)
class _Point:
    id: int
    time: int


@dataclass
class _Steps:
    """What the last probes did, which decides how the next one is placed."""

    page: _Page | None = None
    moved: str | None = None  # which bound the last probe moved: "lo" or "hi"
    previously_moved: str | None = None
    local: bool = False  # the last probe was placed by the page's local rate
    was_local: bool = False
    lo_weight: float = 1.0
    hi_weight: float = 1.0
    stalled: int = 0  # probes in a row that did not halve the interval
    unchanged: bool = False

    @property
    def repeated_local_miss(self) -> bool:
        """A local-rate probe missed on the same side as the probe before it: the rate
        changes nearby (a burst), so don't trust it again right away."""
        return self.was_local and self.moved == self.previously_moved

    def record(self, lo: _Point, hi: _Point, new_lo: _Point, new_hi: _Point, page: _Page) -> None:
        self.page, self.was_local = page, self.local
        self.unchanged = (new_lo, new_hi) == (lo, hi)
        moved = "lo" if new_lo != lo else "hi" if new_hi != hi else None
        if moved is not None and moved == self.moved:
            # Illinois: halve the weight of the bound that stayed put twice, which moves
            # the next estimate towards it (plain regula falsi would creep from one side).
            if moved == "lo":
                self.hi_weight *= 0.5
            else:
                self.lo_weight *= 0.5
        else:
            self.lo_weight = self.hi_weight = 1.0
        self.previously_moved, self.moved = self.moved, moved
        halved = (new_hi.id - new_lo.id) * 2 <= hi.id - lo.id
        self.stalled = 0 if halved else self.stalled + 1


class TradeIdSearch:
    """Searches one symbol's trade ids by time; reuses every page it fetched.

    Keep one instance for several targets on the same symbol (a day's start and end):
    the second search starts from the bounds the first one found.
    """

    def __init__(self, rest: BinanceRest, symbol: str) -> None:
        self._rest = rest
        self._symbol = symbol
        self._pages: list[_Page] = []
        self._latest: _Page | None = None
        self._oldest: _Page | None = None

    @property
    def requests(self) -> int:
        return len(self._pages)

    def first_id_at(self, target_ms: int) -> int:
        """The first trade id with time >= target_ms, or latest id + 1 if none is that late."""
        latest = self._latest or self._fetch(None)
        self._latest = latest
        if not latest.ids:
            return 0
        if latest.times[-1] < target_ms:
            return latest.ids[-1] + 1
        oldest = self._oldest or self._fetch(0)
        self._oldest = oldest
        if oldest.times[0] >= target_ms:
            return oldest.ids[0]

        steps = _Steps()
        while True:
            found = self._answer(target_ms)
            if found is not None:
                return found
            lo, hi = self._bounds(target_ms)
            gap = hi.id - lo.id - 1  # ids strictly between the bounds
            if gap <= 0:
                return hi.id
            if gap <= PAGE:
                # One page of every id between the bounds settles it: its first trade at or
                # after the target is the answer, or else `hi` is.
                self._fetch(lo.id + 1, limit=gap)
                found = self._answer(target_ms)
                return found if found is not None else hi.id
            estimate = self._estimate(lo, hi, target_ms, steps)
            start = min(max(estimate - PAGE // 2, lo.id + 1), hi.id - PAGE)
            page = self._fetch(start)
            steps.record(lo, hi, *self._bounds(target_ms), page)

    # --- knowledge from fetched pages ----------------------------------------------------------

    def _answer(self, target_ms: int) -> int | None:
        """The answer if some page shows it: a trade at/after the target right after one
        before it, or a page whose fromId lies above a known trade before the target."""
        lo, _ = self._bounds(target_ms)
        for page in self._pages:
            if not page.ids:
                continue
            index = bisect.bisect_left(page.times, target_ms)
            if 0 < index < len(page.ids):
                return page.ids[index]
            if index == 0 and page.from_id is not None and page.from_id <= lo.id + 1:
                return page.ids[0]
        return None

    def _bounds(self, target_ms: int) -> tuple[_Point, _Point]:
        """The highest known trade before the target and the lowest at or after it."""
        lo = _Point(-1, -(2**62))
        hi = _Point(2**62, 2**62)
        for page in self._pages:
            if not page.ids:
                continue
            index = bisect.bisect_left(page.times, target_ms)
            if index > 0 and page.ids[index - 1] > lo.id:
                lo = _Point(page.ids[index - 1], page.times[index - 1])
            if index < len(page.ids) and page.ids[index] < hi.id:
                hi = _Point(page.ids[index], page.times[index])
        return lo, hi

    def _estimate(self, lo: _Point, hi: _Point, target_ms: int, steps: _Steps) -> int:
        """Where to probe next (the centre of the next page)."""
        steps.local = False
        if steps.unchanged:
            # The last page taught nothing (a hole in the ids): read on from just above `lo`,
            # which always moves `lo` up or settles the answer.
            return lo.id + 1 + PAGE // 2
        if steps.stalled >= 2:
            return (lo.id + hi.id) // 2
        page = steps.page
        rate = page.rate if page is not None and page.ids else None
        if page is not None and rate is not None and not steps.repeated_local_miss:
            if page.ids[-1] == lo.id:
                jump = round((target_ms - lo.time) * rate)
                if jump <= LOCAL_REACH:
                    steps.local = True
                    return lo.id + jump
            elif page.ids[0] == hi.id:
                jump = round((hi.time - target_ms) * rate)
                if jump <= LOCAL_REACH:
                    steps.local = True
                    return hi.id - jump
        # Regula falsi on (id, time - target) with the Illinois weights.
        below = (target_ms - lo.time) * steps.lo_weight
        above = (hi.time - target_ms) * steps.hi_weight
        if below + above <= 0:
            return (lo.id + hi.id) // 2
        return lo.id + round(below / (below + above) * (hi.id - lo.id))

    def _fetch(self, from_id: int | None, limit: int = PAGE) -> _Page:
        frame = self._rest.historical_trades(self._symbol, from_id=from_id, limit=limit)
        ms = frame.select(pl.col("trade_id"), pl.col("ts").dt.epoch("ms").alias("ms"))
        page = _Page(ms["trade_id"].to_list(), ms["ms"].to_list(), from_id)
        self._pages.append(page)
        return page


__all__ = ["TradeIdSearch"]
