"""Fleet: many symbols x many days through the orchestrated paths, against the bare work.

The same instrument-days (default 50 symbols x 30 days of 100k trades: 150M trades) from
the simulator's archive, three ways, each into its own fresh lake and Dagster instance:

- **bare**: the library functions the assets call, in a loop in this process
  (`load_and_check_partition` for the backfill; `build_trades_partition`,
  `build_quotes_partition`, `compact_partition` and every SQL model for the build), after
  Great Expectations is loaded (its import is a fixed cost, measured apart);
- **cli**: `marketlake backfill` / `marketlake build` as a user types them, `--jobs 1` and
  `--jobs 2`, timed from process start to exit;
- **daemon**: `dagster dev` (webserver + daemon), the backfill launched with
  `launchPartitionBackfill` as the UI's dialog does, the run queue at `--jobs` runs at
  once, timed from the launch until the backfill reports COMPLETED_SUCCESS.

Reported per path: wall time, the ratio to the bare work, runs created, peak RSS of one
process and peak memory of all its processes together (PSS), data files per partition, and
the time from start until the first instrument-day is readable in the lake (its first Delta
commit).

    uv run --frozen python -m benchmarks.fleet                    # 50 x 30 x 100k, ~1 h
    uv run --frozen python -m benchmarks.fleet --symbols 10 --days 10 --paths bare,cli

The simulator builds every day's zip before any timing: the exchange's cost is not ours.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dbt_like_sql as dls
from assets.daily import build_quotes_partition, build_trades_partition, compact_partition
from assets.partition_key import PartitionKey
from assets.sql_models import run_model_partition
from assets.trades_history import load_and_check_partition
from benchmarks.common import (
    DAY,
    Context,
    GraphQL,
    Row,
    free_port,
    human_count,
    simulator,
    stop_dev,
)
from benchmarks.dagster_overhead import _env, _wait_serving
from deploy.loopback.graphql import BACKFILL_FINISHED, LAUNCH_BACKFILL
from marketlake.exchanges.binance.endpoints import BinanceEndpoints
from marketlake.instruments import Instrument
from marketlake.lake import Lake
from marketlake.quality import wait_until_loaded as load_great_expectations
from orchestration import warm_workers
from orchestration.instance import local_instance_yaml

NAME = "fleet"
ROOT = Path(__file__).resolve().parents[1]
DAILY_ASSETS = ("trades", "quotes", "ticks_compaction")


@dataclass
class Fleet:
    symbols: tuple[str, ...]
    days: int
    trades: int

    @property
    def dates(self) -> list[dt.date]:
        return [DAY + dt.timedelta(days=i) for i in range(self.days)]

    @property
    def end(self) -> dt.date:
        return self.dates[-1]

    @property
    def keys(self) -> list[str]:
        return [f"{d.isoformat()}|binance:{s}" for s in self.symbols for d in self.dates]

    @property
    def label(self) -> str:
        return f"{len(self.symbols)} symbols x {self.days} days x {human_count(self.trades)}"


@dataclass
class Measured:
    path: str
    seconds: float
    runs: int | None = None
    peak_rss_mib: float | None = None
    peak_total_mib: float | None = None
    files_per_partition: float | None = None
    first_readable_s: float | None = None
    notes: list[str] = field(default_factory=list)


def symbols_named(count: int) -> tuple[str, ...]:
    """Symbols the simulator serves like any other (its universe derives from the name)."""
    known = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    return known[:count] + tuple(f"F{i:03d}USDT" for i in range(max(0, count - len(known))))


# --- the bare work --------------------------------------------------------------------------------


def bare_backfill(fleet: Fleet, base_url: str, lake_root: Path) -> Measured:
    lake = Lake(str(lake_root))
    binance = BinanceEndpoints(archive_url=base_url, rest_url=base_url)
    archive, rest = binance.archive(), binance.rest()
    with _first_commit_watch(lake_root / "trades_history") as first:
        started = time.perf_counter()
        for symbol in fleet.symbols:
            for date in fleet.dates:
                load, outcomes = load_and_check_partition(
                    symbol, date, lake=lake, archive=archive, rest=rest
                )
                if not load.written:
                    raise RuntimeError(f"{date}|{symbol} refused: {outcomes}")
        seconds = time.perf_counter() - started
    return Measured(
        "bare", seconds, first_readable_s=first.after(started),
        files_per_partition=_files_per_partition(lake_root / "trades_history", fleet),
    )  # fmt: skip


def bare_build(fleet: Fleet, base_url: str, lake_root: Path) -> Measured:
    lake = Lake(str(lake_root))
    binance = BinanceEndpoints(archive_url=base_url, rest_url=base_url)
    manifest = dls.load_manifest()
    with _first_commit_watch(lake_root / "trades") as first:
        started = time.perf_counter()
        for symbol in fleet.symbols:
            for date in fleet.dates:
                key = PartitionKey(date, Instrument("binance", symbol))
                results = [
                    build_trades_partition(key, lake, binance),
                    build_quotes_partition(key, lake),
                    compact_partition(key, lake),
                    *(run_model_partition(manifest, m, key, lake) for m in manifest.order),
                ]
                if not all(r.written for r in results):
                    raise RuntimeError(f"{key}: a table was refused")
        seconds = time.perf_counter() - started
    return Measured(
        "bare", seconds, first_readable_s=first.after(started),
        files_per_partition=_files_per_partition(lake_root / "trades", fleet),
    )  # fmt: skip


# --- the CLI --------------------------------------------------------------------------------------


def cli(fleet: Fleet, env: dict[str, str], command: str, jobs: int, table: Path) -> Measured:
    args = [
        sys.executable, "-m", "orchestration.cli", command, ",".join(fleet.symbols),
        "--start", DAY.isoformat(), "--end", fleet.end.isoformat(), "--yes", "--jobs", str(jobs),
    ]  # fmt: skip
    with _first_commit_watch(table) as first:
        started = time.perf_counter()
        process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        with _PeakMemory(process.pid) as peak:
            stdout, stderr = process.communicate()
        seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"marketlake {command} failed: {stderr[-3000:]}")
    summary = [line for line in stdout.splitlines() if " in " in line and "partition" in line]
    return Measured(
        f"cli --jobs {jobs}",
        seconds,
        runs=_runs_in(summary[-1]) if summary else None,
        peak_rss_mib=peak.mib,
        peak_total_mib=peak.total_mib,
        files_per_partition=_files_per_partition(table, fleet),
        first_readable_s=first.after(started),
    )


def _runs_in(line: str) -> int | None:
    match = re.search(r"\((\d+) runs?\)", line)
    return int(match[1]) if match else None


# --- the daemon -----------------------------------------------------------------------------------


def daemon(
    fleet: Fleet, env: dict[str, str], assets: Sequence[str], jobs: int, table: Path
) -> Measured:
    """`dagster dev`, a backfill of `assets` over every key, `jobs` runs at a time."""
    home = Path(env["DAGSTER_HOME"])
    # The instance `marketlake` creates, starting `jobs` of the backfill's runs at once.
    (home / "dagster.yaml").write_text(local_instance_yaml(home, backfill_runs=jobs))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (home / "dev.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "orchestration.daemon", "dev", "-h", "127.0.0.1", "-p", str(port),
         "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    peak = _PeakMemory(server.pid)
    try:
        _wait_serving(url, server)
        _wait_warm(home, env)
        gql = GraphQL(url, timeout=120)
        params = {"assetSelection": [{"path": [a]} for a in assets], "partitionNames": fleet.keys}
        with _first_commit_watch(table) as first, peak:
            started = time.perf_counter()
            launched = gql(LAUNCH_BACKFILL, {"backfillParams": params})["launchPartitionBackfill"]
            if launched["__typename"] != "LaunchBackfillSuccess":
                raise RuntimeError(f"launch failed: {launched}")
            while (backfill := gql.backfill(launched["backfillId"]))["status"] not in (
                BACKFILL_FINISHED
            ):
                time.sleep(0.5)
            seconds = time.perf_counter() - started
        runs = len(backfill["runs"])
    finally:
        stop_dev(server)
        log.close()
    if backfill["status"] != "COMPLETED_SUCCESS":
        # the home is in a temporary folder removed on exit: say what failed here
        failed = [r["runId"] for r in backfill["runs"] if r["status"] != "SUCCESS"]
        raise RuntimeError(
            f"backfill ended {backfill['status']}; runs not succeeded: {failed}; the end of "
            f"{log.name}:\n{Path(log.name).read_text()[-6000:]}"
        )
    return Measured(
        f"daemon, {jobs} run{'s' if jobs > 1 else ''} at once", seconds, runs=runs,
        peak_rss_mib=peak.mib, peak_total_mib=peak.total_mib,
        files_per_partition=_files_per_partition(table, fleet),
        first_readable_s=first.after(started),
    )  # fmt: skip


def _wait_warm(home: Path, env: dict[str, str]) -> None:
    """Until the daemon's warm run-worker process serves (unless `MARKETLAKE_WARM_RUNS=0`):
    the benchmark times the backfill, not the daemon's start."""
    if env.get("MARKETLAKE_WARM_RUNS", "1").strip() != "0":
        warm_workers.wait_until_serving(home)


# --- what is measured beside the time ---------------------------------------------------------


class _Watch:
    def __init__(self) -> None:
        self.at: float | None = None

    def after(self, started: float) -> float | None:
        return None if self.at is None else max(0.0, self.at - started)


@contextlib.contextmanager
def _first_commit_watch(table: Path) -> Iterator[_Watch]:
    """When the table's first Delta commit appears: the first instrument-day readable."""
    watch, stop = _Watch(), threading.Event()

    def poll() -> None:
        log = table / "_delta_log"
        while not stop.is_set():
            if log.is_dir() and any(log.glob("*.json")):
                watch.at = time.perf_counter()
                return
            stop.wait(0.05)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        stop.set()
        thread.join()


class _PeakMemory:
    """Sampled twice a second over the processes under `pid`: the largest resident set of
    any one of them, and the largest total of their proportional sets (PSS: a page shared
    by n processes counts 1/n in each, so forked runs' shared pages count once)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.kib, self.total_kib, self._stop = pid, 0, 0, threading.Event()

    def __enter__(self) -> _PeakMemory:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mib(self) -> float:
        return self.kib / 1024

    @property
    def total_mib(self) -> float:
        return self.total_kib / 1024

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            total = 0
            for pid in _descendants(self.pid):
                with contextlib.suppress(OSError):
                    self.kib = max(self.kib, _kib(Path(f"/proc/{pid}/status"), "VmRSS:"))
                    total += _kib(Path(f"/proc/{pid}/smaps_rollup"), "Pss:")
            self.total_kib = max(self.total_kib, total)


def _kib(proc_file: Path, key: str) -> int:
    """One `key: N kB` line of a /proc file (0 when it has none)."""
    for line in proc_file.read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return 0


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def _files_per_partition(table: Path, fleet: Fleet) -> float | None:
    if not table.is_dir():
        return None
    return round(sum(1 for _ in table.rglob("*.parquet")) / len(fleet.keys), 2)


# --- running it -----------------------------------------------------------------------------------


def measure(
    ctx: Context, fleet: Fleet, paths: Sequence[str], jobs: Sequence[int]
) -> dict[str, list[Measured]]:
    """Every path's backfill and build of `fleet`; {"backfill": [...], "build": [...]}."""
    results: dict[str, list[Measured]] = {"backfill": [], "build": []}
    with simulator(ctx, fleet.trades, fleet.symbols) as sim:
        started = time.perf_counter()
        for symbol in fleet.symbols:
            for date in fleet.dates:
                sim.archive.get(symbol, date, sim.faults)
        ctx.log(f"  simulator: {len(fleet.keys)} zips in {time.perf_counter() - started:.0f}s")
        started = time.perf_counter()
        load_great_expectations()
        ctx.log(f"  Great Expectations loaded in {time.perf_counter() - started:.1f}s (apart)")

        def log(kind: str, m: Measured) -> None:
            results[kind].append(m)
            ctx.log(
                f"  {kind} {m.path}: {m.seconds:.1f}s, runs {m.runs}, "
                f"peak {m.peak_rss_mib} MiB, all processes {m.peak_total_mib} MiB"
            )

        if "bare" in paths:
            lake = ctx.path("bare-lake")
            log("backfill", bare_backfill(fleet, sim.base_url, lake))
            log("build", bare_build(fleet, sim.base_url, lake))
        for n in jobs if "cli" in paths else ():
            lake, home = ctx.path(f"cli{n}-lake"), ctx.path(f"cli{n}-home")
            env = _env(sim.base_url, home, lake, fleet.symbols)
            log("backfill", cli(fleet, env, "backfill", n, lake / "trades_history"))
            log("build", cli(fleet, env, "build", n, lake / "trades"))
        for n in jobs if "daemon" in paths else ():
            lake, home = ctx.path(f"daemon{n}-lake"), ctx.path(f"daemon{n}-home")
            env = _env(sim.base_url, home, lake, fleet.symbols)
            subprocess.run(
                [sys.executable, "-m", "orchestration.cli", "symbols", "add", *fleet.symbols],
                cwd=ROOT, env=env, check=True, capture_output=True,
            )  # fmt: skip
            log("backfill", daemon(fleet, env, ["trades_history"], n, lake / "trades_history"))
            models = dls.load_manifest().order
            log("build", daemon(fleet, env, [*DAILY_ASSETS, *models], n, lake / "trades"))
    return results


def rows(fleet: Fleet, results: dict[str, list[Measured]]) -> list[Row]:
    out = []
    for kind, measured in results.items():
        bare = next((m.seconds for m in measured if m.path == "bare"), None)
        for m in measured:
            ratio = f"{m.seconds / bare:.2f}x the bare work" if bare and m.path != "bare" else ""
            details = ", ".join(
                part
                for part in (
                    ratio,
                    f"{m.runs} runs" if m.runs is not None else "",
                    f"peak RSS {m.peak_rss_mib:,.0f} MiB" if m.peak_rss_mib else "",
                    f"all processes {m.peak_total_mib:,.0f} MiB (PSS)" if m.peak_total_mib else "",
                    f"{m.files_per_partition} files/partition"
                    if m.files_per_partition is not None
                    else "",
                    f"first instrument-day readable after {m.first_readable_s:.1f}s"
                    if m.first_readable_s is not None
                    else "",
                    *m.notes,
                )
                if part
            )
            out.append(
                Row(
                    NAME, f"{kind} {fleet.label}: {m.path}", "s", [m.seconds], better="lower",
                    compare=f"bare {bare:.1f}s" if bare else "", note=details, fmt="{:,.1f}",
                )
            )  # fmt: skip
    return out


def run(ctx: Context) -> list[Row]:
    if ctx.quick:
        # the CLI's process pool is tested by tests/cli; here one run through each path
        fleet, paths, jobs = Fleet(symbols_named(1), 1, 2_000), ("bare", "cli"), (1,)
    else:
        fleet, paths, jobs = Fleet(symbols_named(50), 30, 100_000), ("bare", "cli", "daemon"), (2,)
    return rows(fleet, measure(ctx, fleet, paths, jobs))


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.common import print_table

    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet", description=__doc__)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--trades", type=int, default=100_000, help="trades per instrument-day")
    parser.add_argument("--paths", default="bare,cli,daemon", help="any of bare,cli,daemon")
    parser.add_argument("--jobs", default="1,2", help="runs at once for cli/daemon: 1,2")
    parser.add_argument("--workdir", type=Path, default=None, help="keep lakes here")
    args = parser.parse_args(argv)
    fleet = Fleet(symbols_named(args.symbols), args.days, args.trades)
    with tempfile.TemporaryDirectory(prefix="marketlake-fleet-") as scratch:
        root = args.workdir or Path(scratch)
        (root / "sim-cache").mkdir(parents=True, exist_ok=True)
        ctx = Context(quick=False, runs=1, workdir=root / "fleet", sim_cache=root / "sim-cache")
        ctx.workdir.mkdir(exist_ok=True)
        results = measure(ctx, fleet, args.paths.split(","), [int(j) for j in args.jobs.split(",")])
        print_table(rows(fleet, results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
