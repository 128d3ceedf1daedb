"""Binance's request-weight limit, kept on the client side, and retry backoff.

Binance counts a weight per request in a fixed window (1 minute, aligned to the clock) per
IP, reports the running total in `X-MBX-USED-WEIGHT-1M`, answers 429 when the limit is
exceeded and bans the IP (418) when a client keeps going after a 429. So the budget is
shared by every client in the process that talks to the same IP (a backfill and the
stream's gap filler), reserves weight *before* sending, trusts the server's header over
its own count when the server has seen more, and holds all of them back together while a
Retry-After runs.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

#: Request weight of each endpoint (spot, as documented; depth for limit <= 100).
ENDPOINT_WEIGHTS: Final[dict[str, int]] = {
    "/api/v3/historicalTrades": 25,
    "/api/v3/trades": 25,
    "/api/v3/aggTrades": 4,
    "/api/v3/exchangeInfo": 20,
    "/api/v3/depth": 5,
    "/api/v3/time": 1,
    "/api/v3/ping": 1,
}


def depth_weight(limit: int) -> int:
    """/api/v3/depth's weight grows with the number of levels asked for."""
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


def backoff_delay(
    attempt: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Capped exponential backoff with full jitter: uniform in [0, min(cap, base * 2**n)].

    Full jitter spreads retries of many clients hit by the same outage instead of letting
    them return in lockstep.
    """
    ceiling = min(cap, base * (2 ** max(attempt, 0)))
    return (rng or random).uniform(0.0, ceiling)


class WaitTooLong(Exception):
    """The budget would hold a request back longer than its caller allows."""

    def __init__(self, seconds: float, why: str) -> None:
        super().__init__(f"{why}: {seconds:,.0f} s")
        self.seconds = seconds
        self.why = why


@dataclass(frozen=True)
class Reservation:
    """Weight taken from the budget for one request; settle it with the response."""

    weight: int
    window: int
    waited: float


class WeightBudget:
    """A thread-safe request-weight budget for one fixed window, shared between clients.

    `acquire` blocks until the request fits under `limit * max_fraction` in the current
    window (sleeping to the window's end if it doesn't) and until any Retry-After block is
    over. `settle` raises the local count to the server's `X-MBX-USED-WEIGHT-1M` when the
    response carries a higher one, because other processes on the same IP use the same weight.
    Windows are aligned to the wall clock (`time.time() // window_seconds`), as Binance's
    are; `grace_seconds` after each boundary absorbs small clock differences.
    """

    def __init__(
        self,
        limit: int = 6000,
        *,
        window_seconds: float = 60.0,
        max_fraction: float = 0.9,
        grace_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if limit <= 0 or window_seconds <= 0 or not 0 < max_fraction <= 1:
            raise ValueError("limit and window_seconds must be > 0, max_fraction in (0, 1]")
        self.limit = limit
        self.window_seconds = window_seconds
        self.max_fraction = max_fraction
        self.grace_seconds = (
            min(0.25, window_seconds / 20) if grace_seconds is None else grace_seconds
        )
        self._clock = clock
        self._cond = threading.Condition()
        self._window = self._window_of(clock() - self.grace_seconds)
        self._used = 0  # confirmed (server header) or counted locally, this window
        self._pending = 0  # reserved by requests in flight
        self._blocked_until = 0.0

    @property
    def usable(self) -> int:
        """The most weight this budget lets a window carry (the safety margin applied)."""
        return max(1, math.floor(self.limit * self.max_fraction))

    @property
    def used(self) -> int:
        """Weight used in the current window plus weight in flight."""
        with self._cond:
            self._roll(self._clock())
            return self._used + self._pending

    def acquire(
        self,
        weight: int,
        *,
        max_wait_s: float | None = None,
        notice: Callable[[float, str], object] | None = None,
    ) -> Reservation:
        """Reserve `weight`, sleeping while it doesn't fit or a Retry-After is running.

        `notice(seconds, why)` is told before the first sleep; a wait longer than
        `max_wait_s` raises `WaitTooLong` instead of sleeping.
        """
        if weight > self.usable:
            raise ValueError(f"request weight {weight} exceeds the usable budget {self.usable}")
        started = time.monotonic()
        told = False
        with self._cond:
            while True:
                now = self._clock()
                self._roll(now)
                wait_until = self._blocked_until
                why = "the end of a Retry-After the exchange asked for"
                if self._used + self._pending + weight > self.usable:
                    if self._window_end(self._window) > wait_until:
                        why = "the next window's request weight (this one's is used up)"
                    wait_until = max(wait_until, self._window_end(self._window))
                if wait_until <= now:
                    self._pending += weight
                    return Reservation(weight, self._window, time.monotonic() - started)
                wait = wait_until - now
                if max_wait_s is not None and wait > max_wait_s:
                    raise WaitTooLong(wait, why)
                if notice is not None and not told:
                    notice(wait, why)
                    told = True
                self._cond.wait(wait)

    def settle(self, reservation: Reservation, server_used: int | None) -> None:
        """Record the response: the server's count raises ours, never lowers it.

        A header above our count is weight other processes on the IP used. A header below
        it is the server's *next* window: its boundary passed while ours waits out the
        grace, so the low figure must not free weight in the window we are still counting.
        A request reserved in the previous window that comes back in this one may have
        been counted by the server in either; its weight is added to this window, the
        safe guess (the header can't say which window it counted).
        """
        with self._cond:
            self._roll(self._clock())
            if reservation.window == self._window:
                self._pending = max(0, self._pending - reservation.weight)
                self._used = max(self._used + reservation.weight, server_used or 0)
            else:
                self._used += reservation.weight
            self._cond.notify_all()

    def release(self, reservation: Reservation, *, count: bool = True) -> None:
        """Drop a reservation that got no usable response; `count` keeps its weight used.

        A request that timed out may still have been counted by the server, so the safe
        default is to count it.
        """
        with self._cond:
            self._roll(self._clock())
            if reservation.window == self._window:
                self._pending = max(0, self._pending - reservation.weight)
            if count:
                self._used += reservation.weight
            self._cond.notify_all()

    def block_for(self, seconds: float) -> None:
        """Hold every request back for `seconds` (a Retry-After from 429 or 418)."""
        with self._cond:
            self._blocked_until = max(self._blocked_until, self._clock() + max(0.0, seconds))
            self._cond.notify_all()

    def block_until_window_end(self) -> float:
        """Hold requests back until the next window (a 429 without Retry-After)."""
        with self._cond:
            end = self._window_end(self._window_of(self._clock() - self.grace_seconds))
            self._blocked_until = max(self._blocked_until, end)
            return end - self._clock()

    def _window_of(self, now: float) -> int:
        return math.floor(now / self.window_seconds)

    def _window_end(self, window: int) -> float:
        return (window + 1) * self.window_seconds + self.grace_seconds

    def _roll(self, now: float) -> None:
        # The new window starts after the grace, so a request never lands in the server's
        # old window thinking it is in the new one.
        window = self._window_of(now - self.grace_seconds)
        if window != self._window:
            self._window = window
            self._used = 0
            self._pending = 0


__all__ = [
    "ENDPOINT_WEIGHTS",
    "Reservation",
    "WaitTooLong",
    "WeightBudget",
    "backoff_delay",
    "depth_weight",
]
