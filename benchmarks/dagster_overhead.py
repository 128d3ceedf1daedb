"""Dagster overhead: a backfill through the UI's path against the CLI and the bare work.

The same partitions (3 symbols x 60 small days of `trades_history`) three ways:

- the bare work: `load_and_check_partition` per partition, in this process;
- the CLI: `marketlake backfill` (Dagster in-process, runs of up to 30 days of one
  symbol), its own reported time, on the first `CLI_SAMPLE` partitions of one symbol;
- the UI's path: `dagster dev` (webserver + daemon) on loopback, the backfill launched with
  the GraphQL mutation the "Launch backfill" dialog sends (`launchPartitionBackfill`),
  timed from the launch until the backfill reports COMPLETED_SUCCESS. The daemon batches
  partitions into runs (`BackfillPolicy.multi_run(30)`), each run its own process.

Overhead per partition = (path time - bare work time) / partitions. Starting `dagster dev`
is not counted (it is up before anyone clicks). One run: the three paths take minutes.
`--quick` runs one partition through the bare work and the CLI only: the webserver + daemon
path takes a minute even for one partition (the backfill daemon wakes every 30 s) and is
covered by tests/e2e/test_ui_backfill.py.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from benchmarks.archive_backfill import backfill_once
from benchmarks.common import (
    DAY,
    Context,
    GraphQL,
    Row,
    free_port,
    simulator,
    stop_dev,
)
from marketlake.lake import Lake
from marketlake.quality import wait_until_loaded as ge_context

NAME = "dagster_overhead"
ROOT = Path(__file__).resolve().parents[1]
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
BAR_S = 0.5
CLI_SAMPLE = 20


def _env(base_url: str, home: Path, lake: Path, symbols: tuple[str, ...]) -> dict[str, str]:
    return {
        # the user's settings stay out, but for the launcher's switch (an A/B of it)
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith("MARKETLAKE_") or k == "MARKETLAKE_WARM_RUNS"
        },
        "DAGSTER_HOME": str(home),
        "MARKETLAKE_LAKE": str(lake),
        "MARKETLAKE_BINANCE_ARCHIVE_URL": base_url,
        "MARKETLAKE_BINANCE_REST_URL": base_url,
        "MARKETLAKE_SYMBOLS": ",".join(symbols),
        "COLUMNS": "200",
    }


def _cli(env: dict[str, str], *args: str, timeout: float = 1800) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"marketlake {' '.join(args[:2])} failed: {done.stderr[-3000:]}")
    return done.stdout + done.stderr


def cli_seconds(env: dict[str, str], symbols: tuple[str, ...], days: int) -> float:
    """`marketlake backfill` of symbols x `days` days from DAY, as the CLI times its runs."""
    end = DAY + dt.timedelta(days=days - 1)
    output = _cli(
        env, "backfill", ",".join(symbols), "--start", DAY.isoformat(), "--end", end.isoformat()
    )
    match = re.search(r"(\d+) partitions? in ([\d.]+)s", output)
    if match is None:
        raise RuntimeError(f"no summary in the CLI's output: {output[-2000:]}")
    return float(match[2])


def daemon_seconds(ctx: Context, env: dict[str, str], keys: list[str]) -> tuple[float, list[dict]]:
    """Start `dagster dev`, launch the backfill, wait for it; (seconds, its runs' times)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (Path(env["DAGSTER_HOME"]) / "dev.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "orchestration.daemon", "dev", "-h", "127.0.0.1", "-p", str(port),
         "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_serving(url, server)
        started = time.perf_counter()
        launched_at = time.time()
        gql = GraphQL(url, timeout=60)
        backfill_id = gql.launch_backfill("trades_history", keys)
        while True:
            backfill = gql.backfill(backfill_id)
            if backfill["status"] not in ("REQUESTED", "CANCELING", "FAILING"):
                break
            if time.perf_counter() - started > 1800:
                raise TimeoutError("the backfill did not finish within 30 minutes")
            time.sleep(0.25)
        seconds = time.perf_counter() - started
    finally:
        stop_dev(server)
        log.close()
    if backfill["status"] != "COMPLETED_SUCCESS":
        raise RuntimeError(f"backfill ended {backfill['status']}; see {log.name}")
    runs = [
        {k: run[k] - launched_at for k in ("creationTime", "startTime", "endTime")}
        for run in backfill["runs"]
    ]
    return seconds, runs


def timeline(runs: list[dict]) -> str:
    """When the daemon created the runs, how long they queued and ran (seconds)."""
    created = sorted(r["creationTime"] for r in runs)
    waits = sorted(r["startTime"] - r["creationTime"] for r in runs)
    spans = sorted(r["endTime"] - r["startTime"] for r in runs)
    return (
        f"runs created {created[0]:.0f}–{created[-1]:.0f} s after the launch, "
        f"queued {waits[0]:.0f}–{waits[-1]:.0f} s, ran {spans[0]:.0f}–{spans[-1]:.0f} s each"
    )


def _wait_serving(url: str, server: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("dagster dev exited early")
        try:
            if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"dagster dev did not serve {url} within {timeout}s")


def _landed(lake: Path) -> int:
    return Lake(str(lake)).scan("trades_history").select("symbol", "date").unique().collect().height


def run(ctx: Context) -> list[Row]:
    symbols, days, n = (SYMBOLS[:1], 1, 500) if ctx.quick else (SYMBOLS, 60, 2_000)
    cli_days = min(days, CLI_SAMPLE)
    dates = [DAY + dt.timedelta(days=i) for i in range(days)]
    keys = [f"{d.isoformat()}|binance:{s}" for s in symbols for d in dates]
    with simulator(ctx, n, symbols) as sim:
        for symbol in symbols:  # build every zip first: the exchange's cost is not Dagster's
            for date in dates:
                sim.archive.get(symbol, date, sim.faults)
        ge_context()
        bare_lake = ctx.path("overhead-bare")
        started = time.perf_counter()
        for symbol in symbols:
            for date in dates:
                backfill_once(sim.base_url, bare_lake, symbol, date)
        bare = (time.perf_counter() - started) / len(keys)
        ctx.log(f"  bare work: {len(keys)} partitions, {bare:.3f}s each")

        cli_lake, cli_home = ctx.path("overhead-cli-lake"), ctx.path("overhead-cli-home")
        env = _env(sim.base_url, cli_home, cli_lake, symbols)
        cli = cli_seconds(env, symbols[:1], cli_days) / cli_days
        ctx.log(f"  CLI in-process: {cli_days} partitions, {cli:.2f}s each")

        daemon = runs = None
        if not ctx.quick:
            ui_lake, ui_home = ctx.path("overhead-ui-lake"), ctx.path("overhead-ui-home")
            env = _env(sim.base_url, ui_home, ui_lake, symbols)
            _cli(env, "symbols", "add", *symbols)
            total, runs = daemon_seconds(ctx, env, keys)
            daemon = total / len(keys)
            ctx.log(
                f"  webserver + daemon: {len(keys)} partitions in {total:.1f}s; {timeline(runs)}"
            )
            assert _landed(ui_lake) == len(keys)
    assert _landed(bare_lake) == len(keys) and _landed(cli_lake) == cli_days

    cli_row = Row(
        "Dagster overhead",
        f"{cli_days} partitions of {n:,} trades through the CLI in-process (a run each)",
        "s/partition",
        [cli - bare],
        better="lower",
        fmt="{:.2f}",
        compare=f"bare work {bare:.3f} s/partition",
    )
    if daemon is None:
        return [cli_row]
    return [
        Row(
            "Dagster overhead",
            f"{len(symbols)} symbols × {days} days ({len(keys)} partitions of {n:,} trades) "
            f"through webserver + daemon, {len(runs)} runs",
            "s/partition",
            [daemon - bare],
            bar=BAR_S,
            better="lower",
            fmt="{:.2f}",
            compare=(
                f"CLI in-process {cli - bare:.2f} s/partition overhead ({cli:.2f} s each); "
                f"bare work {bare:.3f} s/partition"
            ),
            note=f"launch → COMPLETED_SUCCESS {daemon * len(keys):.1f} s; {timeline(runs)}",
        ),
        cli_row,
    ]
