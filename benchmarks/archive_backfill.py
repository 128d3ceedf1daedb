"""Archive backfill: one instrument-day end to end, against the floor of the same bytes.

End to end is what the `trades_history` asset does for a partition,
`load_and_check_partition`: CHECKSUM, download, sha256, unzip, parse, lake keys, one
Delta commit, then the Great Expectations checks, from the simulator on loopback.

The floor is the least any implementation must do with the same day: a bare `pl.read_csv`
of the already unzipped CSV plus a bare `write_deltalake` of that frame into a new table.
No download, no checksum, no unzip, no checks: it is a floor, not a competitor.

The first backfill of each session is a warm-up (Great Expectations builds its context
once per process, ~4 s; a backfill process then loads up to 30 partitions).
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from deltalake import write_deltalake

from assets.trades_history import load_and_check_partition
from benchmarks.common import DAY, SYMBOL, Context, Row, human_count, simulator
from marketlake.exchanges.binance.archive import BinanceArchive
from marketlake.exchanges.binance.parsing import TRADES_CSV_SCHEMA
from marketlake.exchanges.binance.rest import BinanceRest
from marketlake.lake import Lake

NAME = "archive_backfill"
BAR_ROWS_PER_S = 1_500_000
BAR_FLOOR_RATIO = 1.3
#: A published Kafka-to-ClickHouse tick pipeline, for scale.
KAFKA_CLICKHOUSE_ROWS_PER_S = 50_000


class TimedArchive:
    """The archive client, timing `fetch_day` (download, verify, unzip, parse)."""

    def __init__(self, inner: BinanceArchive) -> None:
        self.inner = inner
        self.seconds = 0.0

    @property
    def base_url(self) -> str:
        """The archive's address (a day prefetched from it is taken by it: none is, here)."""
        return self.inner.base_url

    def fetch_day(self, symbol: str, date: dt.date):
        started = time.perf_counter()
        try:
            return self.inner.fetch_day(symbol, date)
        finally:
            self.seconds = time.perf_counter() - started


@dataclass(frozen=True)
class TimedLake(Lake):
    """The lake, timing `replace_partition` (the Delta commit)."""

    timings: dict[str, float] = field(default_factory=dict)

    def replace_partition(self, *args, **kwargs) -> int:
        started = time.perf_counter()
        try:
            return super().replace_partition(*args, **kwargs)
        finally:
            self.timings["write"] = time.perf_counter() - started


def backfill_once(base_url: str, lake_root: Path, symbol: str = SYMBOL, date: dt.date = DAY):
    """One partition as the asset does it; (seconds, rows, phase seconds)."""
    archive = TimedArchive(BinanceArchive(base_url))
    rest = BinanceRest(base_url)
    lake = TimedLake(str(lake_root))
    try:
        started = time.perf_counter()
        load, outcomes = load_and_check_partition(
            symbol, date, lake=lake, archive=archive, rest=rest
        )
        seconds = time.perf_counter() - started
    finally:
        archive.inner.close()
        rest.close()
    failed = [o.name for o in outcomes if not o.passed]
    if failed:
        raise RuntimeError(f"checks failed on a clean day: {failed}")
    phases = {
        "fetch": archive.seconds,
        "write": lake.timings["write"],
        "checks and the rest": seconds - archive.seconds - lake.timings["write"],
    }
    return seconds, load.frame.height, phases


def floor_once(csv_path: Path, table: Path) -> tuple[float, float, int]:
    """Bare read_csv + bare write_deltalake; (read seconds, write seconds, rows)."""
    started = time.perf_counter()
    frame = pl.read_csv(csv_path, has_header=False, schema=TRADES_CSV_SCHEMA)
    read = time.perf_counter()
    write_deltalake(str(table), frame.to_arrow())
    return read - started, time.perf_counter() - read, frame.height


def extract_csv(sim, symbol: str, date: dt.date, dest: Path) -> Path:
    """The day's CSV as the simulator serves it, unzipped once (outside any timing)."""
    built = sim.archive.get(symbol, date, sim.faults)
    with zipfile.ZipFile(built.path) as archive:
        (member,) = archive.namelist()
        archive.extract(member, dest)
    return dest / member


def run(ctx: Context) -> list[Row]:
    sizes = [20_000] if ctx.quick else [1_000_000, 5_000_000]
    rows: list[Row] = []
    for n in sizes:
        rows += _one_size(ctx, n)
    return rows


def _one_size(ctx: Context, n: int) -> list[Row]:
    label = f"{human_count(n)} trades"
    with simulator(ctx, n) as sim:
        sim.archive.get(SYMBOL, DAY, sim.faults)  # build the zip before any timing
        scratch = ctx.path(f"archive-{n}")
        csv_path = extract_csv(sim, SYMBOL, DAY, scratch)
        totals, phases = [], []
        warmups = 0 if ctx.quick else 1
        for i in range(warmups + ctx.runs):
            with tempfile.TemporaryDirectory(dir=scratch) as lake:
                seconds, height, phase = backfill_once(sim.base_url, Path(lake))
            assert height == n, (height, n)
            if i >= warmups:
                totals.append(seconds)
                phases.append(phase)
            ctx.log(f"  archive backfill {label}: {seconds:.2f}s {_fmt(phase)}")
        floors = []
        for _ in range(ctx.runs):
            with tempfile.TemporaryDirectory(dir=scratch) as table:
                read, write, height = floor_once(csv_path, Path(table) / "t")
            floors.append((read, write))
        csv_path.unlink()

    floor_s = [r + w for r, w in floors]
    floor_median = sorted(floor_s)[len(floor_s) // 2]
    read_med = sorted(r for r, _ in floors)[len(floors) // 2]
    write_med = sorted(w for _, w in floors)[len(floors) // 2]
    phase_med = {k: sorted(p[k] for p in phases)[len(phases) // 2] for k in phases[0]}
    floor_text = (
        f"floor {n / floor_median:,.0f} rows/s ({floor_median:.2f} s: read_csv "
        f"{n / read_med:,.0f} rows/s, write_deltalake {n / write_med:,.0f} rows/s); "
        f"Kafka→ClickHouse pipeline {KAFKA_CLICKHOUSE_ROWS_PER_S:,} rows/s"
    )
    return [
        Row(
            "archive backfill",
            f"{label}, end to end (load_and_check_partition)",
            "rows/s",
            [n / s for s in totals],
            bar=BAR_ROWS_PER_S,
            compare=floor_text,
            note=f"median phases: {_fmt(phase_med)}",
        ),
        Row(
            "archive backfill",
            f"{label}, time ÷ floor time",
            "×",
            [s / floor_median for s in totals],
            bar=BAR_FLOOR_RATIO,
            better="lower",
            fmt="{:.2f}",
            compare=f"floor {floor_median:.3f} s (bare read_csv + write_deltalake)",
        ),
    ]


def _fmt(phases: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f} s" for k, v in phases.items())
