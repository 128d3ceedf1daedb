"""Backfill peak memory: the peak RSS of a process that backfills and checks one big day.

The backfill runs in a child process (`python -m benchmarks.backfill_memory URL LAKE`)
against the simulator served from this one, so the peak is the client's alone. The child
reports its own high-water mark (`VmHWM` of /proc/self/status: its address space's peak
RSS). Not `ru_maxrss` from `wait4`: Linux folds the address space the child was forked
from (this process's, gigabytes after the other benchmarks) into it at `exec`. The child
also reports its RSS after the imports, the part that does not grow with the day.
"""

from __future__ import annotations

import json
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
    """Run the child; (its peak RSS in GiB, what it printed)."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.backfill_memory", base_url, str(lake)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"backfill child failed with status {done.returncode}: {done.stderr}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report["peak_rss_gib"], report


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


def _status_gib(field: str) -> float:
    """A size from /proc/self/status (VmRSS: now, VmHWM: the peak), in GiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def _child(base_url: str, lake: str) -> None:
    from benchmarks.archive_backfill import backfill_once
    from marketlake.quality import wait_until_loaded

    wait_until_loaded()  # Great Expectations' process: started once, whatever the day
    baseline = _status_gib("VmRSS")
    seconds, rows, _ = backfill_once(base_url, Path(lake))
    report = {"rows": rows, "seconds": round(seconds, 2), "rss_after_imports_gib": baseline}
    print(json.dumps({**report, "peak_rss_gib": _status_gib("VmHWM")}))


if __name__ == "__main__":
    _child(*sys.argv[1:3])
