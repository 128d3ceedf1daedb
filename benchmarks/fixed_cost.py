"""Fixed cost of a command: from process start to the first partition's work.

`marketlake backfill` and then `marketlake build` of one small day (BTCUSDT, DAY) against
the simulator, each a fresh process, `runs` times; the bar is 2 s to the first work. The
moment of the first work is observed by `OBSERVER`, the few lines the command runs under:
before it calls `orchestration.cli.main` it wraps the calls that start an instrument-day's
work so that the first of them prints the wall-clock time on stderr:

- backfill: the day's first download, from the archive (`BinanceArchive.fetch_day`, also
  when the command starts it ahead of the run, `assets.archive_prefetch`) or from REST
  (`trades_for_day`);
- build: the first scan of a table for the day's rows (`Lake.scan`).

The modules it wraps are ones the command imports in its first half second anyway (its
settings import the lake and the Binance clients), so observing moves no import. Process
start is taken just before the process is spawned, so the interpreter's start counts.
The total is process start to exit (the whole command, Great Expectations' process
included). The Dagster home and the lake are made by an untimed first backfill, as a
user's are by their first command. `--quick` runs one backfill, in a fresh home: a
command costs ~10 s of CI's budget, most of it Great Expectations' import.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import DAY, SYMBOL, Context, Row, human_count, simulator

NAME = "fixed_cost"
BAR_S = 2.0
ROOT = Path(__file__).resolve().parents[1]

OBSERVER = """
import sys, time
from marketlake.exchanges.binance.archive import BinanceArchive
from marketlake.exchanges.binance.rest import BinanceRest
from marketlake.lake import Lake

def observe(owner, name):
    original = getattr(owner, name)
    def observed(*args, **kwargs):
        if not observe.seen:
            observe.seen = True
            print(f"FIRST_WORK {time.time():.6f} {name}", file=sys.stderr, flush=True)
        return original(*args, **kwargs)
    setattr(owner, name, observed)

observe.seen = False
observe(BinanceArchive, "fetch_day")
observe(BinanceRest, "trades_for_day")
observe(Lake, "scan")
from orchestration.cli import main
sys.exit(main(sys.argv[1:]))
"""

FIRST_WORK = re.compile(r"^FIRST_WORK ([\d.]+) (\w+)$", re.MULTILINE)


def timed_command(env: dict[str, str], *args: str, cwd: Path = ROOT) -> tuple[float, float]:
    """(seconds to the first work, seconds in all) of `marketlake *args` in a new process."""
    started = time.time()
    done = subprocess.run(
        [sys.executable, "-c", OBSERVER, *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    total = time.time() - started
    if done.returncode != 0:
        raise RuntimeError(f"marketlake {' '.join(args)} failed: {done.stderr[-3000:]}")
    first = FIRST_WORK.search(done.stderr)
    if first is None:
        raise RuntimeError(f"marketlake {' '.join(args)} did no work: {done.stderr[-3000:]}")
    return float(first[1]) - started, total


def command_env(base_url: str, home: Path, lake: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("MARKETLAKE_")},
        "DAGSTER_HOME": str(home),
        "MARKETLAKE_LAKE": str(lake),
        "MARKETLAKE_BINANCE_ARCHIVE_URL": base_url,
        "MARKETLAKE_BINANCE_REST_URL": base_url,
        "COLUMNS": "200",
    }


def run(ctx: Context) -> list[Row]:
    trades = ctx.size(50_000, 5_000)
    day = ("--start", DAY.isoformat())
    commands = ("backfill",) if ctx.quick else ("backfill", "build")
    samples: dict[str, list[tuple[float, float]]] = {command: [] for command in commands}
    with simulator(ctx, trades) as sim:
        env = command_env(sim.base_url, ctx.path("dagster_home"), ctx.path("lake"))
        if not ctx.quick:
            timed_command(env, "backfill", SYMBOL, *day)  # the home and the lake, untimed
        for i in range(ctx.runs):
            for command in commands:
                first, total = timed_command(env, command, SYMBOL, *day)
                samples[command].append((first, total))
                ctx.log(f"  {command} {i + 1}: first work {first:.2f}s, total {total:.2f}s")
    size = f"1 day of {human_count(trades)} trades"
    what = {"backfill": "first download", "build": "first read of the day's rows"}
    rows = []
    for command, pairs in samples.items():
        rows.append(
            Row(
                NAME, f"{command}: process start → {what[command]}", "s",
                [first for first, _ in pairs], bar=BAR_S, better="lower", fmt="{:.2f}",
                compare=f"total {min(t for _, t in pairs):.2f}s at best ({size})",
            )
        )  # fmt: skip
        rows.append(
            Row(NAME, f"{command}: whole command, {size}", "s", [t for _, t in pairs],
                better="lower", fmt="{:.2f}")
        )  # fmt: skip
    return rows
