"""Backfill peak memory: the peak RSS of a process that backfills and checks one big day.

The backfill runs in a child process (`python -m benchmarks.backfill_memory URL LAKE`)
against the simulator served from this one, so the peak is the client's alone; the parent
reads it from `os.wait4` (the child's own `ru_maxrss`). The child also reports its RSS
after the imports, the part that does not grow with the day.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from benchmarks.common import DAY, SYMBOL, Context, Row, human_count, simulator

NAME = "backfill_memory"
BAR_GIB = 2.0
ROOT = Path(__file__).resolve().parents[1]


def measure_child(base_url: str, lake: Path) -> tuple[float, dict]:
    """Run the child; (peak RSS in GiB, what it printed)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.backfill_memory", base_url, str(lake)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    out = process.stdout.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"backfill child failed with status {process.returncode}: {out}")
    return usage.ru_maxrss / 2**20, json.loads(out.strip().splitlines()[-1])  # KiB -> GiB


def run(ctx: Context) -> list[Row]:
    n = ctx.size(5_000_000, 20_000)
    with simulator(ctx, n) as sim:
        built = sim.archive.get(SYMBOL, DAY, sim.faults)
        with zipfile.ZipFile(built.path) as archive:
            csv_bytes = sum(info.file_size for info in archive.infolist())
        peaks, reports = [], []
        for _ in range(ctx.runs):
            with tempfile.TemporaryDirectory(dir=ctx.workdir) as lake:
                peak, report = measure_child(sim.base_url, Path(lake))
            peaks.append(peak)
            reports.append(report)
            ctx.log(f"  backfill peak RSS {human_count(n)}: {peak:.2f} GiB {report}")
    baseline = sorted(r["rss_after_imports_gib"] for r in reports)[len(reports) // 2]
    peak_median = sorted(peaks)[len(peaks) // 2]
    return [
        Row(
            "backfill peak memory",
            f"{human_count(n)} trades, peak RSS of the backfill process",
            "GiB",
            peaks,
            bar=BAR_GIB,
            better="lower",
            fmt="{:.2f}",
            compare=(
                f"CSV {csv_bytes / 2**30:.2f} GiB (zip {built.size / 2**30:.2f} GiB); "
                f"peak = {peak_median / (csv_bytes / 2**30):.1f}× the CSV"
            ),
            note=f"{baseline:.2f} GiB of it is the interpreter, imports and the GE context",
        )
    ]


def _rss_gib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def _child(base_url: str, lake: str) -> None:
    from benchmarks.archive_backfill import backfill_once
    from marketlake.quality import _context

    _context()  # Great Expectations' context: built once per process, whatever the day
    baseline = _rss_gib()
    seconds, rows, _ = backfill_once(base_url, Path(lake))
    print(
        json.dumps({"rows": rows, "seconds": round(seconds, 2), "rss_after_imports_gib": baseline})
    )


if __name__ == "__main__":
    _child(*sys.argv[1:3])
