"""Daily build: the daily job's work for one 1M-trade day, against that day's backfill.

The day is backfilled from the simulator's archive (timed: the comparison), then the
functions the daily job's assets call run in the job's order: `trades` (merge history and
live, dedupe, gap check, write, GE checks), `quotes`, the live-table compaction, and every
dbt_like_sql model with its data tests (bars_1m, bars_1h, bars_1d, spread_1m,
daily_summary). That is the build without Dagster.

The same day through Dagster in-process (`marketlake build` over two days, a child
process, one run over both) gives the other rows, per partition as the CLI times the
run: its first run in a fresh instance creates the SQLite tables and is not counted. The
difference from the bare build is Dagster's own cost (the run, and per partition the
materializations and 35 asset check evaluations, each planned and then recorded).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import dbt_like_sql as dls
from assets.daily import build_quotes_partition, build_trades_partition, compact_partition
from assets.partition_key import PartitionKey
from assets.sql_models import run_model_partition
from benchmarks.archive_backfill import backfill_once
from benchmarks.common import DAY, SYMBOL, Context, Row, human_count, repeat, simulator
from marketlake.exchanges.binance.endpoints import BinanceEndpoints
from marketlake.instruments import Instrument
from marketlake.lake import Lake

NAME = "daily_build"
BAR_S = 5.0
ROOT = Path(__file__).resolve().parents[1]


def build_day(lake: Lake, binance: BinanceEndpoints, manifest: dls.Manifest) -> dict[str, float]:
    """Every asset of the daily job for one partition, in order; seconds per step."""
    key = PartitionKey(DAY, Instrument("binance", SYMBOL))
    steps: dict[str, float] = {}

    def step(name: str, work) -> None:
        started = time.perf_counter()
        result = work()
        steps[name] = time.perf_counter() - started
        failed = [o.name for o in result.outcomes if not o.passed and o.severity == "ERROR"]
        if failed:
            raise RuntimeError(f"{name}: blocking checks failed: {failed}")

    step("trades", lambda: build_trades_partition(key, lake, binance))
    step("quotes", lambda: build_quotes_partition(key, lake))
    step("compaction", lambda: compact_partition(key, lake))
    for model in manifest.order:
        step(model, lambda model=model: run_model_partition(manifest, model, key, lake))
    return steps


def dagster_build_seconds(base_url: str, lake: Path, home: Path, days: int) -> list[float]:
    """`marketlake build` of `days` days from DAY (Dagster in-process, one run over the
    days): the command's seconds per partition, as many times as there are days."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MARKETLAKE_")},
        "DAGSTER_HOME": str(home),
        "MARKETLAKE_BINANCE_ARCHIVE_URL": base_url,
        "MARKETLAKE_BINANCE_REST_URL": base_url,
        "COLUMNS": "200",
    }
    end = DAY + dt.timedelta(days=days - 1)
    command = [sys.executable, "-m", "orchestration.cli", "build", SYMBOL, "--lake", str(lake)]
    command += ["--start", DAY.isoformat(), "--end", end.isoformat()]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    # the summary's last line: "N partitions in X.Ys (1 run)"
    total = re.search(r"(\d+) partitions? in ([\d.]+)s", done.stdout)
    if done.returncode != 0 or total is None or int(total[1]) != days:
        raise RuntimeError(f"marketlake build failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return [float(total[2]) / days] * days


def run(ctx: Context) -> list[Row]:
    n = ctx.size(1_000_000, 20_000)
    manifest = dls.load_manifest()
    lake_root = ctx.path("daily-lake")
    lake = Lake(str(lake_root))
    with simulator(ctx, n) as sim:
        binance = BinanceEndpoints(archive_url=sim.base_url, rest_url=sim.base_url)
        warmup = 0 if ctx.quick else 1
        backfills = repeat(ctx.runs, lambda: backfill_once(sim.base_url, lake_root)[0], warmup)
        steps: list[dict[str, float]] = []

        def once() -> float:
            steps.append(build_day(lake, binance, manifest))
            return sum(steps[-1].values())

        builds = repeat(ctx.runs, once, warmup)
        for seconds, detail in zip(builds, steps[warmup:], strict=True):
            ctx.log(
                f"  daily build: {seconds:.2f}s "
                + ", ".join(f"{k} {v:.2f}" for k, v in detail.items())
            )
        days = 1 if ctx.quick else 2  # --quick: the first run only
        if days > 1:
            backfill_once(sim.base_url, lake_root, date=DAY + dt.timedelta(days=1))
        home = ctx.path("daily-dagster-home")
        if not ctx.quick:  # the instance's first run creates its SQLite tables
            dagster_build_seconds(sim.base_url, lake_root, home, 1)
        runs = [dagster_build_seconds(sim.base_url, lake_root, home, days) for _ in range(ctx.runs)]
        ctx.log(f"  daily build through Dagster in-process, per partition: {runs}")

    last = steps[-1]
    slowest = sorted(last.items(), key=lambda kv: -kv[1])[:3]
    backfill_median = sorted(backfills)[len(backfills) // 2]
    compare = f"backfill of the same day {backfill_median:.2f} s (load_and_check_partition)"
    rows = [
        Row(
            "daily build",
            f"{human_count(n)}-trade day: trades + quotes + compaction + 5 SQL models, with checks",
            "s",
            builds,
            bar=BAR_S,
            better="lower",
            fmt="{:.2f}",
            compare=compare,
            note="slowest steps: " + ", ".join(f"{k} {v:.2f} s" for k, v in slowest),
        ),
        Row(
            "daily build",
            f"{human_count(n)}-trade day through Dagster in-process (`marketlake build`)",
            "s",
            [seconds[0] for seconds in runs],
            bar=BAR_S,
            better="lower",
            fmt="{:.2f}",
            compare=compare,
            note="per partition of one `marketlake build` run over 2 days: includes the "
            "process start and importing Great Expectations",
        ),
    ]
    return rows
