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

Key = tuple[str, dt.date]
"""(symbol, UTC day) of one archive file."""


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

    REST:
    - `weight_limit`: overrides the request-weight limit per window (a rate-limit storm is
      a small number here, or 0).
    - `fail_5xx`: the next N REST responses are 503.

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

    def clear(self) -> None:
        """Back to a healthy exchange."""
        with self._lock:
            for knob in (self.corrupt_zip, self.wrong_checksum, self.unpublished):
                knob.clear()
            self.truncated_csv.clear()
            self.archive_gaps.clear()
            self.weight_limit = None
            self.slow_seconds = 0.0
            self.fail_5xx = self.archive_fail_5xx = 0

    def archive_variant(self, key: Key) -> tuple[tuple[tuple[int, int], ...], bool, bool]:
        """The knobs that change a zip's bytes: (gaps, truncated, corrupt)."""
        gaps = tuple(sorted((int(a), int(b)) for a, b in self.archive_gaps.get(key, ())))
        return gaps, key in self.truncated_csv, key in self.corrupt_zip

    @staticmethod
    def variant_tag(variant: tuple[tuple[tuple[int, int], ...], bool, bool]) -> str:
        """A short stable file-name tag for an archive variant ("clean" when none)."""
        gaps, truncated, corrupt = variant
        if not gaps and not truncated and not corrupt:
            return "clean"
        return hashlib.sha256(repr(variant).encode()).hexdigest()[:12]


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
