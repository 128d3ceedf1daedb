"""A price-level order book kept from a snapshot plus absolute-size updates.

Coinbase's level2 channel sends the whole book once, then the new size of each changed
level ("0" removes it). Prices are kept in a sorted list beside a dict so that an update is a
dict write plus, for a new or removed level, one bisect and a memmove, and reading the top N
is a slice: a snapshot of BTC-USD holds thousands of levels, and the top 20 is read up to ten
times a second.
"""

from __future__ import annotations

from bisect import bisect_left, insort


class BookSide:
    """One side of the book; ``best_first`` reads it highest-first for bids."""

    __slots__ = ("_descending", "_prices", "_sizes")

    def __init__(self, descending: bool) -> None:
        self._descending = descending
        self._prices: list[float] = []  # ascending
        self._sizes: dict[float, float] = {}

    def __len__(self) -> int:
        return len(self._prices)

    def set(self, price: float, size: float) -> None:
        """Set the size at ``price``; 0 removes the level (a missing level is no error)."""
        sizes = self._sizes
        if size == 0.0:
            if sizes.pop(price, None) is not None:
                prices = self._prices
                del prices[bisect_left(prices, price)]
        else:
            if price not in sizes:
                insort(self._prices, price)
            sizes[price] = size

    def clear(self) -> None:
        self._prices.clear()
        self._sizes.clear()

    def top(self, depth: int) -> tuple[list[float], list[float]]:
        """The best ``depth`` levels as (prices, sizes), best first."""
        prices = self._prices[-depth:][::-1] if self._descending else self._prices[:depth]
        sizes = self._sizes
        return prices, [sizes[p] for p in prices]


class Book:
    """Bids and asks of one product."""

    __slots__ = ("asks", "bids")

    def __init__(self) -> None:
        self.bids = BookSide(descending=True)
        self.asks = BookSide(descending=False)

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
