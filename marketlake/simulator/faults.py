"""Runtime fault knobs and served-traffic statistics of the simulator.

Tests flip these while the server runs (`sim.faults.unpublished.add(("BTCUSDT", day))`):
single set/dict operations are atomic under the GIL, and the counters that handlers both
read and write (`take_5xx`) go through a lock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

Key = tuple[str, dt.date]
"""(symbol, UTC day) of one archive file."""


class ArchiveVariant(NamedTuple):
    """The faults that change a zip's bytes (each variant is built and cached once)."""

    gaps: tuple[tuple[int, int], ...]
    truncated: bool
    corrupt: bool
    repeated: bool = False


@dataclass
class Faults:
    """What the simulated exchange gets wrong, all off by default.

    Archive (keyed by (symbol, date)):
    - `corrupt_zip`: the zip is cut short; its CHECKSUM matches the cut bytes, so only
      opening the zip detects it.
    - `wrong_checksum`: the CHECKSUM sidecar names a sha256 the zip doesn't have.
    - `unpublished`: both the zip and the sidecar answer 404.
    - `archive_gaps`: inclusive trade-id ranges left out of the CSV (REST still serves
      them), like the holes real archives have.
    - `truncated_csv`: the CSV ends mid-line inside a well-formed zip, checksum matching.
    - `archive_fail_5xx`: the next N archive responses are 503.
    - `repeated_rows`: the CSV repeats its first non-empty hour at the end: well-formed rows
      with duplicated trade ids inside a sound zip whose CHECKSUM matches, so only the
      checks on the parsed day can refuse it.

    REST:
    - `weight_limit`: overrides the request-weight limit per window (a rate-limit storm is
      a small number here, or 0).
    - `fail_5xx`: the next N REST responses are 503.
    - `fail_429`: the next N REST responses are 429 with `Retry-After: retry_after_s`
      (a burst the client must wait out, whatever its weight budget says).
    - `slow_next`: the next N REST responses wait `slow_next_seconds` before answering
      (one response past the client's timeout, without slowing everything else).

    Both: `slow_seconds` sleeps before every response.
    """

    corrupt_zip: set[Key] = field(default_factory=set)
    wrong_checksum: set[Key] = field(default_factory=set)
    unpublished: set[Key] = field(default_factory=set)
    archive_gaps: dict[Key, list[tuple[int, int]]] = field(default_factory=dict)
    truncated_csv: set[Key] = field(default_factory=set)
    weight_limit: int | None = None
    slow_seconds: float = 0.0
    fail_5xx: int = 0
    archive_fail_5xx: int = 0
    repeated_rows: set[Key] = field(default_factory=set)
    fail_429: int = 0
    retry_after_s: int = 1
    slow_next: int = 0
    slow_next_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def take_5xx(self, archive: bool = False) -> bool:
        """Consume one forced 503 for this kind of request, if any are left."""
        with self._lock:
            if archive and self.archive_fail_5xx > 0:
                self.archive_fail_5xx -= 1
                return True
            if not archive and self.fail_5xx > 0:
                self.fail_5xx -= 1
                return True
            return False

    def take_429(self) -> bool:
        """Consume one forced REST 429, if any are left."""
        with self._lock:
            if self.fail_429 > 0:
                self.fail_429 -= 1
                return True
            return False

    def take_slow(self) -> float:
        """Seconds to delay this REST response: one forced slow answer, if any are left."""
        with self._lock:
            if self.slow_next > 0:
                self.slow_next -= 1
                return self.slow_next_seconds
            return 0.0

    def clear(self) -> None:
        """Back to a healthy exchange."""
        with self._lock:
            for knob in (self.corrupt_zip, self.wrong_checksum, self.unpublished):
                knob.clear()
            self.truncated_csv.clear()
            self.repeated_rows.clear()
            self.archive_gaps.clear()
            self.weight_limit = None
            self.slow_seconds = self.slow_next_seconds = 0.0
            self.fail_5xx = self.archive_fail_5xx = self.fail_429 = self.slow_next = 0
            self.retry_after_s = 1

    def archive_variant(self, key: Key) -> ArchiveVariant:
        """The knobs that change a zip's bytes."""
        gaps = tuple(sorted((int(a), int(b)) for a, b in self.archive_gaps.get(key, ())))
        return ArchiveVariant(
            gaps, key in self.truncated_csv, key in self.corrupt_zip, key in self.repeated_rows
        )

    @staticmethod
    def variant_tag(variant: ArchiveVariant) -> str:
        """A short stable file-name tag for an archive variant ("clean" when none)."""
        if not any(variant):
            return "clean"
        return hashlib.sha256(repr(tuple(variant)).encode()).hexdigest()[:12]


@dataclass
class Stats:
    """Traffic served, for tests and benchmarks ("zero 418s", "N archive downloads")."""

    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    bytes_sent: int = 0
    archive_builds: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def count_429(self) -> int:
        return self.statuses[429]

    @property
    def count_418(self) -> int:
        return self.statuses[418]

    def record(self, path: str, status: int, nbytes: int) -> None:
        with self._lock:
            self.requests[path] += 1
            self.statuses[status] += 1
            self.bytes_sent += nbytes

    def add_build(self) -> None:
        with self._lock:
            self.archive_builds += 1

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.statuses.clear()
            self.bytes_sent = 0
            self.archive_builds = 0
