"""When to ask a venue for a fresh book snapshot, and when to ask again.

A book that leaves sync (`marketlake.exchanges.book.SyncedBook`) is resubscribed once; the
snapshot that follows brings it back. If none comes (the request was lost, the venue was
busy) the book would stay out of sync, landing no depth, for as long as the connection
lives: so a resubscription still unanswered after `RETRY_AFTER_US` is sent again, checked
at most once a second so that the per-frame cost stays one comparison.
"""

from __future__ import annotations

from typing import Final

from marketlake.exchanges.book import BOOK_RESYNCED, BookEvent

RETRY_AFTER_US: Final = 5_000_000
_CHECK_EVERY_US: Final = 1_000_000


class Resubscriptions:
    """The instruments of one connection waiting for the snapshot they asked for."""

    def __init__(self, retry_after_us: int = RETRY_AFTER_US) -> None:
        self.retry_after_us = retry_after_us
        self._waiting: dict[str, int] = {}  # instrument -> when it was (last) asked for
        self._next_check = 0
        #: Resubscriptions sent again because no snapshot followed.
        self.retries = 0

    def due(self, records: list, received_at_us: int) -> list[str]:
        """Instruments to resubscribe after these records: broken now, or still waiting."""
        due: list[str] = []
        for record in records:
            if type(record) is BookEvent:
                if record.kind == BOOK_RESYNCED:
                    self._waiting.pop(record.instrument, None)
                elif record.instrument not in self._waiting:
                    self._waiting[record.instrument] = received_at_us
                    due.append(record.instrument)
        if self._waiting and received_at_us >= self._next_check:
            self._next_check = received_at_us + _CHECK_EVERY_US
            for instrument, since in self._waiting.items():
                if received_at_us - since >= self.retry_after_us and instrument not in due:
                    self._waiting[instrument] = received_at_us
                    self.retries += 1
                    due.append(instrument)
        return due
