"""Coinbase's level2 book is the exchange-neutral `marketlake.exchanges.book.Book`.

Coinbase's level2 channel sends the whole book once, then the new size of each changed
level ("0" removes it): exactly the price -> size book every venue shares.
"""

from __future__ import annotations

from marketlake.exchanges.book import Book, BookSide

__all__ = ["Book", "BookSide"]
