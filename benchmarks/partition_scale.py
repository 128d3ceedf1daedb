"""How far do instrument-day partitions scale in Dagster? Measured, on a SQLite instance.

Two partition layouts of the same work (one Delta partition per instrument-day either way):

- `instrument_day`: the shipped one, `date x symbol` (MultiPartitionsDefinition, the symbol
  axis dynamic), built by `orchestration.definitions.build_definitions`;
  BackfillPolicy.multi_run(30) as shipped.
- `daily`: DailyPartitionsDefinition only; one run per day writes every symbol of that day
  (`BackfillPolicy.multi_run(1)`: ~50 instrument-days per run, about the shipped 30).

For each layout, in a fresh temporary DAGSTER_HOME (SQLite, the default storage):

1. build the Definitions and enumerate the partition keys (in-process, median of 3);
2. start `dagster dev` on 127.0.0.1 and time the GraphQL queries the UI issues on the asset
   page and its Partitions / Checks tabs (the query texts are copied from dagster-webserver's
   UI bundle), median of `--calls` calls: first with no history, then after materializations
   and one check's evaluations were reported for `--materialized` instrument-days, scattered
   at random (the worst case for the UI's range compression);
3. launch a backfill of every partition with `launchPartitionBackfill` (as the UI's "Launch
   backfill" dialog sends it) and time the daemon: launch -> iteration start -> runs planned
   -> first run -> all runs submitted. The instance's run queue has max_concurrent_runs: 0, so
   runs are created (QUEUED) but never launched; the backfill is cancelled after the
   submission finishes or after `--backfill-timeout` seconds (the rate is then extrapolated).

    uv run python -m benchmarks.partition_scale [--symbols 50 --years 3]

Prints a table (and `--json PATH` writes the numbers). Keep it under ~10 minutes at the
default size on a 2-core machine.
"""

import argparse
import dataclasses
import datetime as dt
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import httpx

from benchmarks.common import GraphQL, free_port, median_seconds, stop_dev
from deploy.loopback.graphql import LAUNCH_BACKFILL
from marketlake.exchanges.binance.endpoints import BinanceEndpoints
from marketlake.lake import Lake

ROOT = Path(__file__).resolve().parents[1]
ASSET = "trades_history"
VARIANTS = ("instrument_day", "daily")

# Real listings first, so the keys look like the ones a user has; then synthetic ones.
_REAL_SYMBOLS = (
    "BTCUSDT ETHUSDT BNBUSDT SOLUSDT XRPUSDT ADAUSDT DOGEUSDT TRXUSDT AVAXUSDT DOTUSDT "
    "LINKUSDT MATICUSDT LTCUSDT BCHUSDT ATOMUSDT UNIUSDT XLMUSDT ETCUSDT FILUSDT APTUSDT "
    "NEARUSDT ARBUSDT OPUSDT INJUSDT SUIUSDT SEIUSDT TIAUSDT AAVEUSDT MKRUSDT LDOUSDT "
    "RNDRUSDT GRTUSDT SANDUSDT MANAUSDT AXSUSDT APEUSDT CRVUSDT SNXUSDT COMPUSDT RUNEUSDT "
    "ALGOUSDT EGLDUSDT FTMUSDT HBARUSDT ICPUSDT VETUSDT THETAUSDT EOSUSDT XTZUSDT KAVAUSDT"
)
REAL_SYMBOLS = tuple(_REAL_SYMBOLS.split())

# --- the GraphQL the UI sends (dagster-webserver 1.13, ui-core sources in its source map) ----

#: assets/usePartitionHealthData.tsx: the partition bar of the asset page and Partitions tab.
PARTITION_HEALTH = """
query PartitionHealthQuery($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      id
      partitionKeysByDimension { name type partitionKeys }
      assetPartitionStatuses {
        ... on TimePartitionStatuses { ranges { status startTime endTime startKey endKey } }
        ... on DefaultPartitionStatuses {
          materializedPartitions materializingPartitions failedPartitions
        }
        ... on MultiPartitionStatuses {
          primaryDimensionName
          ranges {
            primaryDimStartKey primaryDimEndKey primaryDimStartTime primaryDimEndTime
            secondaryDim {
              ... on TimePartitionStatuses { ranges { status startTime endTime startKey endKey } }
              ... on DefaultPartitionStatuses {
                materializedPartitions materializingPartitions failedPartitions
              }
            }
          }
        }
      }
    }
  }
}
"""

_CHECK_STATUSES = """
... on AssetCheckDefaultPartitionStatuses {
  succeededPartitions failedPartitions inProgressPartitions skippedPartitions
  executionFailedPartitions
}
... on AssetCheckTimePartitionStatuses { ranges { startKey endKey status } }
"""

#: asset-data/AssetBaseDataProvider.tsx: every asset shown on the graph, the catalog and the
#: asset page header polls this (partitionStats + each check's partition statuses).
ASSET_GRAPH_LIVE = f"""
query AssetGraphLiveQuery($assetKeys: [AssetKeyInput!]!) {{
  assetNodes(assetKeys: $assetKeys, loadMaterializations: true) {{
    id opNames repository {{ id }} assetKey {{ path }}
    assetMaterializations(limit: 1) {{ timestamp runId stepKey }}
    assetObservations(limit: 1) {{ timestamp runId stepKey }}
    assetChecksOrError {{
      ... on AssetChecks {{
        checks {{
          name canExecuteIndividually
          executionForLatestMaterialization {{
            id runId status timestamp stepKey evaluation {{ severity }}
          }}
          partitionDefinition {{ name description }}
          partitionStatuses {{
            {_CHECK_STATUSES}
            ... on AssetCheckMultiPartitionStatuses {{
              primaryDimensionName
              ranges {{ primaryDimStartKey primaryDimEndKey secondaryDim {{ {_CHECK_STATUSES} }} }}
            }}
          }}
        }}
      }}
    }}
    partitionStats {{ numMaterialized numMaterializing numPartitions numFailed }}
  }}
  assetsLatestInfo(assetKeys: $assetKeys) {{
    id assetKey {{ path }} unstartedRunIds inProgressRunIds
    latestRun {{ id status startTime endTime }}
  }}
}}
"""

#: assets/asset-checks/useAssetCheckPartitionData.tsx: a check's partition bar (Checks tab).
CHECK_PARTITION_HEALTH = """
query AssetCheckPartitionHealthQuery($assetKey: AssetKeyInput!, $checkName: String!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      id
      assetCheckOrError(checkName: $checkName) {
        ... on AssetCheck {
          name
          partitionKeysByDimension { name type partitionKeys }
          partitionStatuses {
            ... on AssetCheckDefaultPartitionStatuses {
              succeededPartitions failedPartitions inProgressPartitions skippedPartitions
              executionFailedPartitions
            }
            ... on AssetCheckTimePartitionStatuses {
              ranges { startTime endTime startKey endKey status }
            }
            ... on AssetCheckMultiPartitionStatuses {
              primaryDimensionName
              ranges {
                primaryDimStartKey primaryDimEndKey primaryDimStartTime primaryDimEndTime
                secondaryDim {
                  ... on AssetCheckTimePartitionStatuses {
                    ranges { startTime endTime startKey endKey status }
                  }
                  ... on AssetCheckDefaultPartitionStatuses {
                    succeededPartitions failedPartitions inProgressPartitions
                    skippedPartitions executionFailedPartitions
                  }
                }
              }
            }
          }
        }
      }
    }
  }
}
"""

CANCEL_BACKFILL = """
mutation Cancel($backfillId: String!) {
  cancelPartitionBackfill(backfillId: $backfillId) {
    __typename
    ... on PythonError { message }
  }
}
"""

ASSET_PRESENT = """
query Present($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) { __typename }
}
"""

#: The check whose partition bar is timed; it gets an evaluation per materialized partition.
TIMED_CHECK = "trade_ids_contiguous"


# --- the alternative layout: daily partitions, all symbols of the day in one run -------------


def build_daily_definitions(settings: Any) -> dg.Definitions:
    """`trades_history` on DailyPartitionsDefinition: one run writes every symbol of its day.

    Each symbol is still its own Delta partition and its own `load_and_check_partition`
    call; only the Dagster partition (and so the status, the checks and the unit of retry)
    is the day.
    """
    from assets.trades_history import load_and_check_partition
    from assets.trades_history_checks import TRADES_HISTORY_CHECKS
    from marketlake.instruments import Instrument
    from orchestration.partitions import instrument_partitions
    from orchestration.resources import build_resources

    days = dg.DailyPartitionsDefinition(start_date=settings.start_date.isoformat(), end_offset=0)
    specs = [
        dg.AssetCheckSpec(
            check.name,
            asset=ASSET,
            description=check.description,
            blocking=check.blocking,
            partitions_def=days,
        )
        for check in TRADES_HISTORY_CHECKS
    ]

    @dg.asset(
        name=ASSET,
        group_name="history",
        partitions_def=days,
        backfill_policy=dg.BackfillPolicy.multi_run(1),
        check_specs=specs,
        kinds={"polars", "deltalake"},
    )
    def trades_history(
        context: dg.AssetExecutionContext,
        lake: dg.ResourceParam[Lake],
        binance: dg.ResourceParam[BinanceEndpoints],
    ):
        archive, rest = binance.archive(), binance.rest()
        date = dt.date.fromisoformat(context.partition_key)
        failed: dict[str, list[str]] = {check.name: [] for check in TRADES_HISTORY_CHECKS}
        rows = 0
        for key in context.instance.get_dynamic_partitions(instrument_partitions.name):
            symbol = Instrument.from_key(key).symbol
            load, outcomes = load_and_check_partition(
                symbol, date, lake=lake, archive=archive, rest=rest
            )
            rows += load.frame.height
            for outcome in outcomes:
                if not outcome.passed:
                    failed[outcome.name].append(symbol)
        yield dg.MaterializeResult(
            metadata={"rows": rows},
            check_results=[
                dg.AssetCheckResult(
                    check_name=check.name,
                    passed=not failed[check.name],
                    severity=dg.AssetCheckSeverity(check.severity),
                    metadata={"failed_symbols": dg.MetadataValue.json(failed[check.name])},
                )
                for check in TRADES_HISTORY_CHECKS
            ],
        )

    return dg.Definitions(assets=[trades_history], resources=build_resources(settings))


def build_variant(variant: str, start_date: dt.date) -> dg.Definitions:
    from orchestration.settings import Settings

    settings = dataclasses.replace(Settings.from_env(), start_date=start_date)
    if variant == "daily":
        return build_daily_definitions(settings)
    from orchestration.definitions import build_definitions

    return build_definitions(settings)


#: The code location `dagster dev` loads for a variant (written into the temporary home).
LOCATION = """\
import datetime as dt
import os

from benchmarks.partition_scale import build_variant

defs = build_variant(
    os.environ["MARKETLAKE_BENCH_VARIANT"],
    dt.date.fromisoformat(os.environ["MARKETLAKE_START_DATE"]),
)
"""

INSTANCE_YAML = """\
telemetry:
  enabled: false
# Runs a backfill creates stay QUEUED: this measures planning and submission, not execution.
run_queue:
  max_concurrent_runs: 0
"""


# --- measuring ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Result:
    variant: str
    partitions: int = 0
    build_defs_s: float = 0.0
    enumerate_keys_s: float = 0.0
    dev_ready_s: float = 0.0
    queries_empty_ms: dict[str, float] = dataclasses.field(default_factory=dict)
    report_events: int = 0
    report_s: float = 0.0
    materialized_partitions: int = 0
    queries_loaded_ms: dict[str, float] = dataclasses.field(default_factory=dict)
    launch_s: float = 0.0
    pickup_s: float | None = None
    planned_s: float | None = None
    planned_runs: int | None = None
    first_run_s: float | None = None
    submitted_runs: int = 0
    all_submitted_s: float | None = None
    submit_rate: float | None = None
    notes: list[str] = dataclasses.field(default_factory=list)


def symbols_for(count: int) -> list[str]:
    extra = [f"SYN{i:04d}USDT" for i in range(max(0, count - len(REAL_SYMBOLS)))]
    return (list(REAL_SYMBOLS) + extra)[:count]


def ui_queries(gql: GraphQL, calls: int) -> dict[str, float]:
    key = {"path": [ASSET]}
    return {
        "PartitionHealthQuery": gql.timed(PARTITION_HEALTH, {"assetKey": key}, calls),
        "AssetGraphLiveQuery": gql.timed(ASSET_GRAPH_LIVE, {"assetKeys": [key]}, calls),
        "AssetCheckPartitionHealthQuery": gql.timed(
            CHECK_PARTITION_HEALTH, {"assetKey": key, "checkName": TIMED_CHECK}, calls
        ),
    }


def start_dev(home: Path, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [
        sys.executable, "-m", "orchestration.daemon", "dev", "-h", "127.0.0.1", "-p", str(port),
        "-f", str(home / "location.py"), "-d", str(ROOT),
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process, f"http://127.0.0.1:{port}"


def wait_for_asset(gql: GraphQL, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("dagster dev exited early")
        try:
            node = gql(ASSET_PRESENT, {"assetKey": {"path": [ASSET]}})["assetNodeOrError"]
            if node["__typename"] == "AssetNode":
                return
        except (httpx.HTTPError, RuntimeError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the {ASSET} asset did not appear within {timeout}s")


def report_history(
    instance: dg.DagsterInstance, keys: list[str], materialized: int, symbols: int, variant: str
) -> tuple[int, int]:
    """Materializations + one check's evaluations for `materialized` instrument-days.

    Returns (partitions reported, events written). The daily layout reports the days that
    hold as many instrument-days (materialized / symbols), picked at random like the rest.
    """
    rng = random.Random(0)
    count = materialized if variant == "instrument_day" else max(1, materialized // symbols)
    chosen = rng.sample(keys, min(count, len(keys)))
    asset_key = dg.AssetKey(ASSET)
    for key in chosen:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key, partition=key))
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=asset_key, check_name=TIMED_CHECK, passed=True, partition=key
            )
        )
    return len(chosen), 2 * len(chosen)


def watch_backfill(
    instance: dg.DagsterInstance,
    backfill_id: str,
    log: Path,
    launched_at: float,
    result: Result,
    timeout: float,
) -> None:
    """Poll the backfill record, its runs and the daemon's log until all runs are submitted."""
    started_pattern = re.compile(rf"Evaluating asset backfill {re.escape(backfill_id)}")
    tag_filter = dg.RunsFilter(tags={"dagster/backfill": backfill_id})
    deadline = launched_at + timeout
    while time.perf_counter() < deadline:
        now = time.perf_counter() - launched_at
        if result.pickup_s is None and started_pattern.search(log.read_text(errors="replace")):
            result.pickup_s = now
        backfill = instance.get_backfill(backfill_id)
        if result.planned_s is None and backfill is not None:
            pending = backfill.submitting_run_requests or []
            submitted = instance.get_runs_count(tag_filter)
            if pending or submitted:
                result.planned_s = now
                result.planned_runs = len(pending) or None
        submitted = instance.get_runs_count(tag_filter)
        if submitted and result.first_run_s is None:
            result.first_run_s = now
        result.submitted_runs = submitted
        if result.planned_runs and submitted >= result.planned_runs:
            result.all_submitted_s = now
            break
        time.sleep(0.2)
    if result.first_run_s is not None and result.submitted_runs:
        elapsed = (result.all_submitted_s or time.perf_counter() - launched_at) - result.first_run_s
        if elapsed > 0 and result.submitted_runs > 1:
            result.submit_rate = (result.submitted_runs - 1) / elapsed


def measure(variant: str, args: argparse.Namespace) -> Result:
    label = variant + (f" ({args.submit_workers} submit threads)" if args.submit_workers else "")
    result = Result(label)
    symbols = symbols_for(args.symbols)
    start = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=round(365 * args.years))
    workdir = Path(tempfile.mkdtemp(prefix=f"partition-scale-{variant}-"))
    home = workdir / "home"
    home.mkdir()
    instance_yaml = INSTANCE_YAML
    if args.submit_workers:
        instance_yaml += (
            f"backfills:\n  use_threads: true\n  num_submit_workers: {args.submit_workers}\n"
        )
    (home / "dagster.yaml").write_text(instance_yaml)
    (home / "location.py").write_text(LOCATION)
    log = workdir / "dagster-dev.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MARKETLAKE_", "DAGSTER_"))},
        "DAGSTER_HOME": str(home),
        "MARKETLAKE_BENCH_VARIANT": variant,
        "MARKETLAKE_START_DATE": start.isoformat(),
        "MARKETLAKE_LAKE": str(workdir / "lake"),
        # The symbols sensor finds every configured symbol present: it never calls out.
        "MARKETLAKE_SYMBOLS": symbols[0],
        # Nothing executes (the queue is paused), but no URL may leave the machine anyway.
        "MARKETLAKE_BINANCE_ARCHIVE_URL": "http://127.0.0.1:9",
        "MARKETLAKE_BINANCE_REST_URL": "http://127.0.0.1:9",
        "GX_ANALYTICS_ENABLED": "false",
        "PYTHONWARNINGS": "ignore",
    }
    saved_env = dict(os.environ)
    os.environ.update({k: v for k, v in env.items() if k.startswith(("MARKETLAKE_", "DAGSTER_"))})
    process = None
    try:
        instance = dg.DagsterInstance.from_config(str(home))
        instance.add_dynamic_partitions("instruments", [f"binance:{s}" for s in symbols])

        # (1) Definitions and partition keys, in-process.
        def load() -> dg.AssetsDefinition:
            defs = build_variant(variant, start)
            defs.get_repository_def()
            return defs.resolve_assets_def(ASSET)

        result.build_defs_s = median_seconds(load, 3)
        partitions_def = load().partitions_def
        assert partitions_def is not None

        def enumerate_keys() -> list[str]:
            return partitions_def.get_partition_keys(dynamic_partitions_store=instance)

        result.enumerate_keys_s = median_seconds(enumerate_keys, 3)
        keys = enumerate_keys()
        result.partitions = len(keys)

        # (2) the UI's queries through a running webserver.
        started = time.perf_counter()
        process, url = start_dev(home, env, log)
        gql = GraphQL(url)
        wait_for_asset(gql, process)
        result.dev_ready_s = time.perf_counter() - started
        result.queries_empty_ms = ui_queries(gql, args.calls)

        started = time.perf_counter()
        result.materialized_partitions, result.report_events = report_history(
            instance, keys, args.materialized, len(symbols), variant
        )
        result.report_s = time.perf_counter() - started
        result.queries_loaded_ms = ui_queries(gql, args.calls)

        # (3) a backfill of every partition, as the UI launches it.
        launched_at = time.perf_counter()
        launched = gql(
            LAUNCH_BACKFILL,
            {
                "backfillParams": {
                    "assetSelection": [{"path": [ASSET]}],
                    "partitionNames": keys,
                    "fromFailure": False,
                }
            },
        )["launchPartitionBackfill"]
        result.launch_s = time.perf_counter() - launched_at
        if launched["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"backfill not launched: {launched}")
        backfill_id = launched["backfillId"]
        try:
            watch_backfill(instance, backfill_id, log, launched_at, result, args.backfill_timeout)
        finally:
            try:
                gql(CANCEL_BACKFILL, {"backfillId": backfill_id})
            except (httpx.HTTPError, RuntimeError) as error:
                result.notes.append(f"cancel failed: {error}")
        return result
    finally:
        if process is not None:
            stop_dev(process)
        os.environ.clear()
        os.environ.update(saved_env)
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


# --- reporting ----------------------------------------------------------------------------------


def _s(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(results: list[Result], args: argparse.Namespace) -> str:
    rows: list[tuple[str, ...]] = [("measure", *(r.variant for r in results))]

    def row(label: str, fn: Callable[[Result], str]) -> None:
        rows.append((label, *(fn(r) for r in results)))

    row("partition keys", lambda r: f"{r.partitions:,}")
    row("build Definitions (s, median of 3)", lambda r: _s(r.build_defs_s, 3))
    row("enumerate partition keys (s, median of 3)", lambda r: _s(r.enumerate_keys_s, 3))
    row("dagster dev up, asset loaded (s)", lambda r: _s(r.dev_ready_s, 1))
    for name in ("PartitionHealthQuery", "AssetGraphLiveQuery", "AssetCheckPartitionHealthQuery"):
        row(f"{name}, no history (ms)", lambda r, n=name: _s(r.queries_empty_ms.get(n), 0))
    row(
        "history reported: partitions (events, s)",
        lambda r: f"{r.materialized_partitions:,} ({r.report_events:,}, {r.report_s:.0f} s)",
    )
    for name in ("PartitionHealthQuery", "AssetGraphLiveQuery", "AssetCheckPartitionHealthQuery"):
        row(f"{name}, with history (ms)", lambda r, n=name: _s(r.queries_loaded_ms.get(n), 0))
    row("launchPartitionBackfill, all keys (s)", lambda r: _s(r.launch_s))
    row("backfill: daemon picks it up (s after launch)", lambda r: _s(r.pickup_s, 1))
    row("backfill: runs planned (s after launch)", lambda r: _s(r.planned_s, 1))
    row("backfill: plan time in the daemon (s)", lambda r: _s(_plan(r), 1))
    row("backfill: runs planned", lambda r: f"{r.planned_runs:,}" if r.planned_runs else "-")
    row("backfill: first run created (s after launch)", lambda r: _s(r.first_run_s, 1))
    row(
        "backfill: runs created",
        lambda r: f"{r.submitted_runs:,}" + ("" if r.all_submitted_s else " (timeout)"),
    )
    row("backfill: run creation rate (runs/s)", lambda r: _s(r.submit_rate, 1))
    row("backfill: all runs created (s after launch)", lambda r: _all_submitted(r))

    widths = [max(len(line[i]) for line in rows) for i in range(len(rows[0]))]
    lines = []
    for index, line in enumerate(rows):
        values = zip(line[1:], widths[1:], strict=True)
        cells = [line[0].ljust(widths[0])] + [c.rjust(w) for c, w in values]
        lines.append("| " + " | ".join(cells) + " |")
        if index == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    head = (
        f"{args.symbols} symbols x {args.years} years, SQLite instance, dagster "
        f"{dg.__version__}, {os.cpu_count()} cores; UI queries: median of {args.calls} calls"
    )
    return head + "\n\n" + "\n".join(lines)


def _plan(r: Result) -> float | None:
    if r.planned_s is None or r.pickup_s is None:
        return None
    return max(0.0, r.planned_s - r.pickup_s)


def _all_submitted(r: Result) -> str:
    if r.all_submitted_s is not None:
        return _s(r.all_submitted_s, 1)
    if r.submit_rate and r.planned_runs and r.first_run_s is not None:
        estimate = r.first_run_s + (r.planned_runs - 1) / r.submit_rate
        return f"~{estimate:.0f} (extrapolated)"
    return "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.partition_scale")
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--years", type=float, default=3)
    parser.add_argument("--materialized", type=int, default=5_000, help="instrument-days")
    parser.add_argument("--calls", type=int, default=5, help="timed calls per UI query")
    parser.add_argument("--backfill-timeout", type=float, default=120, help="seconds")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument(
        "--submit-workers",
        type=int,
        default=0,
        help="backfills.num_submit_workers for the daemon (default: unthreaded, as dagster dev)",
    )
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary homes")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; expected {', '.join(VARIANTS)}")
    results = []
    for variant in variants:
        started = time.perf_counter()
        print(f"measuring {variant} ...", file=sys.stderr, flush=True)
        results.append(measure(variant, args))
        print(f"  {variant} done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print(table(results, args))
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
