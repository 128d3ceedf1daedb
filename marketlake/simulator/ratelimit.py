"""Binance's request-weight limiter: a fixed window, 429 with Retry-After, then a 418 ban.

Binance counts the weight of every request from an IP in a fixed window aligned to the
clock (the `X-MBX-USED-WEIGHT-1M` header), answers 429 once a request would exceed the
limit, and bans the IP (418) when it keeps sending while told to back off. The simulator
does the same with a configurable window so tests can scale a minute down to a second.
There is one counter per server: every client is 127.0.0.1 anyway.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

#: Requests tolerated after a 429 before its Retry-After elapsed; the next one is banned.
TOLERATED_AFTER_429: Final = 2
#: A ban lasts this many windows (Binance starts at 2 minutes and escalates).
BAN_WINDOWS: Final = 2


@dataclass(frozen=True)
class Decision:
    status: int  # 200 (go on), 429 or 418
    used: int  # weight used in the current window, after this request
    retry_after: int = 0  # whole seconds, for 429/418


class WeightLimiter:
    def __init__(
        self,
        limit: int,
        window_seconds: float = 60.0,
        timer: Callable[[], float] = time.time,
    ) -> None:
        if window_seconds <= 0:
            raise ValueError("window_seconds must be > 0")
        self.limit = limit
        self.window_seconds = window_seconds
        self._timer = timer
        self._lock = threading.Lock()
        self._window = -1
        self._used = 0
        self._backoff_until = 0.0
        self._ignored = 0
        self._banned_until = 0.0

    def _roll(self, now: float) -> None:
        window = math.floor(now / self.window_seconds)
        if window != self._window:
            self._window, self._used = window, 0

    @property
    def used(self) -> int:
        with self._lock:
            self._roll(self._timer())
            return self._used

    def acquire(self, weight: int, limit: int | None = None) -> Decision:
        """Charge `weight` if it fits under `limit` (default: the configured one)."""
        limit = self.limit if limit is None else limit
        now = self._timer()
        with self._lock:
            self._roll(now)
            if now < self._banned_until:
                return Decision(418, self._used, _ceil(self._banned_until - now))
            if now < self._backoff_until:
                self._ignored += 1
                if self._ignored > TOLERATED_AFTER_429:
                    self._banned_until = now + BAN_WINDOWS * self.window_seconds
                    self._backoff_until, self._ignored = 0.0, 0
                    return Decision(418, self._used, _ceil(self._banned_until - now))
                return Decision(429, self._used, _ceil(self._backoff_until - now))
            if self._used + weight > limit:
                self._backoff_until = (self._window + 1) * self.window_seconds
                self._ignored = 0
                return Decision(429, self._used, _ceil(self._backoff_until - now))
            self._used += weight
            return Decision(200, self._used)

    def reset(self) -> None:
        """Forget usage, back-off and bans (between test phases)."""
        with self._lock:
            self._window, self._used = -1, 0
            self._backoff_until = self._banned_until = 0.0
            self._ignored = 0


def _ceil(seconds: float) -> int:
    return max(1, math.ceil(seconds))
