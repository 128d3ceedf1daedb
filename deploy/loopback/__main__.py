"""`python -m deploy.loopback`: the production topology on this machine, until Ctrl-C.

PostgreSQL (the instance, deploy/dagster.yaml), SeaweedFS (an S3 lake), the exchange
simulator, then the code server, the webserver and the daemon as separate processes; it
prints where to look and how to point `marketlake` and `ml.Lake()` at the same instance and
lake. `--backfill 2024-03-01..2024-03-03` also launches a backfill of `trades_history`
through the webserver, as the UI's "Launch backfill" does, and reports its figures;
`--exit` stops everything once they are reported. Everything it starts lives in one
temporary directory, removed when it stops (`--keep` leaves it, logs included).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from deploy.loopback.graphql import Webserver
from deploy.loopback.postgres import LocalPostgres, PostgresMissing
from deploy.loopback.seaweed import SeaweedS3
from deploy.loopback.topology import ROOT, Topology, TopologyFailed, code_environment

BUCKET = "marketlake"


def parse_days(text: str) -> list[dt.date]:
    """`2024-03-01` or `2024-03-01..2024-03-03` (inclusive)."""
    first, _, last = text.partition("..")
    try:
        start = dt.date.fromisoformat(first)
        end = dt.date.fromisoformat(last or first)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--backfill {text!r}: {error}") from None
    if end < start:
        raise argparse.ArgumentTypeError(f"--backfill {text!r}: the end is before the start")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m deploy.loopback", description=__doc__)
    parser.add_argument("--symbols", default="BTCUSDT,ETHUSDT", help="comma-separated")
    parser.add_argument("--port", type=int, default=3000, help="the webserver's port")
    parser.add_argument(
        "--trades-per-day", type=int, default=300_000, help="the simulated exchange's size"
    )
    parser.add_argument("--backfill", type=parse_days, metavar="START[..END]")
    parser.add_argument(
        "--compare-cli",
        action="store_true",
        help="then the same backfill with `marketlake backfill` (one process) into another lake",
    )
    parser.add_argument("--exit", action="store_true", help="stop after the backfill")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args(argv)
    args.symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    if (args.exit or args.compare_cli) and not args.backfill:
        parser.error("--exit and --compare-cli need --backfill")
    return args


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    from marketlake.simulator.data import SimConfig
    from marketlake.simulator.server import Simulator
    from marketlake.simulator.websocket import WsSimulator

    workdir = Path(tempfile.mkdtemp(prefix="marketlake-loopback-"))
    signal.signal(signal.SIGTERM, _raise_interrupt)
    started = time.monotonic()
    with ExitStack() as stack:
        if not args.keep:
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        try:
            postgres = stack.enter_context(LocalPostgres())
            s3 = stack.enter_context(SeaweedS3(bucket=BUCKET))
            config = SimConfig(trades_per_day=args.trades_per_day, symbols=tuple(args.symbols))
            http = stack.enter_context(Simulator(config))
            ws = stack.enter_context(WsSimulator(config))
            lake = s3.uri("lake")
            topology = Topology(
                workdir,
                instance_env=postgres.env,
                code_env=code_environment(
                    lake=lake, s3_env=s3.env, http_url=http.base_url, ws_url=ws.url,
                    symbols=args.symbols,
                ),
                ui_port=args.port,
            )  # fmt: skip
            print(f"starting the topology in {workdir} ...", flush=True)
            stack.enter_context(topology)  # started here, stopped on the way out
            print(where_to_look(topology, postgres, s3, lake, http.base_url, ws.url, started))
            if args.backfill:
                # The exchange serves published days: build them now, so the figures time
                # the backfill and not the simulator making up the market.
                for symbol in args.symbols:
                    for day in args.backfill:
                        http.archive.get(symbol, day, http.faults)
                backfill(topology, args.symbols, args.backfill)
            if args.compare_cli:
                cli_backfill(topology, s3.uri("lake-cli"), args.symbols, args.backfill)
            if args.exit:
                return 0
            print("Ctrl-C stops everything.", flush=True)
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("\nstopping ...", flush=True)
            return 0
        except (PostgresMissing, TopologyFailed) as error:
            print(f"error: {error}", file=sys.stderr, flush=True)
            return 1
        finally:
            # Stopping takes a few seconds; a second Ctrl-C must not leave servers behind.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return 0


def where_to_look(topology, postgres, s3, lake, http_url, ws_url, started) -> str:
    env = {**postgres.env, **s3.env, "DAGSTER_HOME": str(topology.home)}
    env |= {k: v for k, v in topology.code_env.items() if k.startswith("MARKETLAKE_")}
    exports = "\n".join(f"  export {name}={value}" for name, value in sorted(env.items()))
    return f"""
up in {time.monotonic() - started:.0f}s, each part its own process:
  Dagster UI    {topology.url}  (Runs, Backfills; Automation -> stream_supervisor)
  code server   grpc {topology.host}:{topology.grpc_port} (dagster api grpc; it starts the runs)
  daemon        schedules, sensors, backfills, the run queue, run monitoring
  instance      PostgreSQL {postgres.host}:{postgres.port}, database {postgres.db}
                ({topology.home}/dagster.yaml, a copy of deploy/dagster.yaml)
  lake          {lake} on {s3.endpoint} (key {s3.access_key})
  exchange      {http_url} (archive, REST), {ws_url} (websockets)
  logs          {topology.logs}/

The `marketlake` command and ml.Lake() on the same instance and lake, from another shell:
{exports}
  uv run marketlake backfill BTCUSDT --start 2024-03-01 --end 2024-03-03
  uv run python -c "import marketlake as ml; print(ml.read('trades_history', 'BTCUSDT', \\
      '2024-03-01', '2024-03-03').collect())"
"""


def backfill(topology: Topology, symbols: list[str], days: list[dt.date]) -> None:
    """Launch a backfill through the webserver; print its figures once the daemon is done."""
    web = Webserver(topology.url)
    try:
        deadline = time.monotonic() + 120
        wanted = {f"binance:{symbol}" for symbol in symbols}
        while not wanted <= set(web.instruments()):  # symbols_sensor adds them
            if time.monotonic() > deadline:
                raise SystemExit(f"symbols_sensor did not add {symbols}; see the daemon's log")
            time.sleep(1)
        partitions = [f"{day}|binance:{symbol}" for symbol in symbols for day in days]
        launched = time.monotonic()
        backfill_id = web.launch_backfill("trades_history", partitions)
        print(f"backfill {backfill_id}: {len(partitions)} partitions launched", flush=True)
        result = web.wait_for_backfill(backfill_id, timeout=3600)
        print(backfill_report(result, time.monotonic() - launched), flush=True)
    finally:
        web.close()


def cli_backfill(topology: Topology, lake: str, symbols: list[str], days: list[dt.date]) -> None:
    """The same partitions with `marketlake backfill`: one process, a run per partition, on
    the same instance and exchange, into `lake`."""
    env = {**topology.code_env, "MARKETLAKE_LAKE": lake}
    command = [sys.executable, "-m", "orchestration.cli", "backfill", ",".join(symbols),
               "--start", str(days[0]), "--end", str(days[-1])]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    wall_s = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"marketlake backfill failed ({done.returncode}):\n{done.stderr}")
    partitions = len(symbols) * len(days)
    print(
        f"marketlake backfill: {partitions} partitions in one process, "
        f"{wall_s:.1f}s ({wall_s / partitions:.2f}s/partition)",
        flush=True,
    )


def backfill_report(backfill: dict, wall_s: float) -> str:
    """The backfill's figures: end to end, and each run's own time per partition."""
    partitions = backfill["numPartitions"]
    runs = [r for r in backfill["runs"] if r["startTime"] and r["endTime"]]
    run_s = [r["endTime"] - r["startTime"] for r in runs]
    lines = [
        f"backfill {backfill['status']}: {partitions} partitions in {len(runs)} runs, "
        f"launch -> done {wall_s:.1f}s ({wall_s / partitions:.2f}s/partition)",
    ]
    if run_s:
        lines.append(
            f"  runs took {min(run_s):.1f}..{max(run_s):.1f}s each, "
            f"{sum(run_s) / partitions:.2f}s of run time per partition"
        )
    return "\n".join(lines)


def _raise_interrupt(signo: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
