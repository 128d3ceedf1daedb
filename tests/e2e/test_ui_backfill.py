"""A backfill launched through Dagster's GraphQL API, run by a real webserver and daemon.

This is the path the UI takes when a user selects partitions and clicks "Launch backfill":
`dagster dev` (webserver + daemon) on loopback, the simulator as the exchange, a temporary
lake and Dagster home. What the UI then shows of each instrument-day is read back through
the same GraphQL API the UI reads.
"""

from __future__ import annotations

import datetime as dt
import time

import polars as pl
import pytest
from support.dagster_dev import (
    dagster_dev,
    graphql,
    marketlake_cli,
    marketlake_env,
    wait_until_warm,
)

from assets.trades_history_checks import TRADES_HISTORY_CHECKS
from deploy.loopback.graphql import BACKFILL, LAUNCH_BACKFILL
from marketlake.lake import Lake
from marketlake.simulator.data import SimConfig
from marketlake.simulator.server import Simulator
from orchestration.run_launcher import PID_TAG

SYMBOLS = ("BTCUSDT", "ETHUSDT")
PARTITIONS = [
    "2024-03-01|binance:BTCUSDT",
    "2024-03-02|binance:BTCUSDT",
    "2024-03-01|binance:ETHUSDT",
    "2024-03-02|binance:ETHUSDT",
]

TRADES_HISTORY = {"path": ["trades_history"]}

#: What the asset page shows of a partition: its latest materialization and its metadata.
MATERIALIZATIONS = """
query Materializations($key: AssetKeyInput!, $partitions: [String!]) {
  assetOrError(assetKey: $key) {
    ... on Asset {
      assetMaterializations(partitions: $partitions, limit: 1) {
        partition runId timestamp
        metadataEntries { label }
      }
    }
  }
}
"""

CHECKS = """
query Checks($keys: [AssetKeyInput!]!) {
  assetNodes(assetKeys: $keys) {
    assetChecksOrError { ... on AssetChecks { checks { name } } }
  }
}
"""

#: A check's executions for one partition ("" for the executions without a partition).
CHECK_EXECUTIONS = """
query Executions($key: AssetKeyInput!, $check: String!, $partition: String) {
  assetCheckExecutions(assetKey: $key, checkName: $check, partition: $partition, limit: 10) {
    runId status partition
    evaluation { success partition targetMaterialization { runId timestamp } }
  }
}
"""

#: The check's Partitions view: date ranges, and per range the symbols in each status.
CHECK_PARTITION_STATUSES = """
query CheckStatuses($keys: [AssetKeyInput!]!) {
  assetNodes(assetKeys: $keys) {
    assetChecksOrError {
      ... on AssetChecks {
        checks {
          name
          partitionStatuses {
            ... on AssetCheckMultiPartitionStatuses {
              ranges {
                primaryDimStartKey primaryDimEndKey
                secondaryDim {
                  ... on AssetCheckDefaultPartitionStatuses { succeededPartitions }
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

#: The keys a partition's materialization carries whoever launched it (the CLI shows them).
PARTITION_METADATA = {
    "rows",
    "first_trade_id",
    "last_trade_id",
    "vwap",
    "rows_by_source",
    "source",
    "archive_lines",
    "bytes_downloaded",
    "gaps_found",
    "rows_filled_from_rest",
    "delta_version",
}


@pytest.mark.slow
def test_a_backfill_launched_through_graphql_completes_with_the_daemon(tmp_path):
    config = SimConfig(trades_per_day=5_000, symbols=("BTCUSDT", "ETHUSDT"))
    with Simulator(config) as sim:
        lake = tmp_path / "lake"
        env = marketlake_env(sim.base_url, tmp_path, SYMBOLS)
        marketlake_cli(env, "symbols", "add", "BTCUSDT", "ETHUSDT")

        with dagster_dev(env, tmp_path / "dev.log") as url:
            wait_until_warm(env, tmp_path / "dev.log")
            launched = graphql(
                url,
                LAUNCH_BACKFILL,
                {
                    "backfillParams": {
                        "assetSelection": [{"path": ["trades_history"]}],
                        "partitionNames": PARTITIONS,
                    }
                },
            )["launchPartitionBackfill"]
            assert launched["__typename"] == "LaunchBackfillSuccess", launched
            backfill = wait_for_backfill(url, launched["backfillId"])
            shown = {key: what_the_ui_shows(url, key) for key in PARTITIONS}
            check_names = [
                c["name"]
                for c in graphql(url, CHECKS, {"keys": [TRADES_HISTORY]})["assetNodes"][0][
                    "assetChecksOrError"
                ]["checks"]
            ]
            unpartitioned = {
                name: check_executions(url, name, "")  # "" asks for those without a partition
                for name in check_names
            }
            succeeded = succeeded_partitions(url)

        assert backfill["status"] == "COMPLETED_SUCCESS", (tmp_path / "dev.log").read_text()[-3000:]
        # Batched runs (BackfillPolicy.multi_run): Dagster ranges a multi-partition backfill
        # along the date axis, one run per symbol here, not one run per partition.
        assert len(backfill["runs"]) == len(SYMBOLS)
        # each forked by the daemon's warm process (orchestration/warm_workers.py)
        for run in backfill["runs"]:
            assert PID_TAG in {tag["key"] for tag in run["tags"]}, run
        landed = Lake(str(lake)).scan("trades_history").collect()
        for key in PARTITIONS:
            date, instrument = key.split("|")
            symbol = instrument.removeprefix("binance:")
            rows = landed.filter(pl.col("symbol") == symbol, pl.col("date").cast(pl.String) == date)
            truth = sim.ground_truth(symbol, pl.Series([date]).str.to_date()[0])
            assert rows.sort("trade_id").select(truth.columns).equals(truth.sort("trade_id"))

        # Every instrument-day is reported as itself, though its run held two of them.
        assert set(check_names) == {check.name for check in TRADES_HISTORY_CHECKS}
        runs = {run["runId"] for run in backfill["runs"]}
        for key in PARTITIONS:
            materialization, executions = shown[key]
            assert materialization["partition"] == key
            assert materialization["runId"] in runs
            labels = {entry["label"] for entry in materialization["metadataEntries"]}
            assert labels >= PARTITION_METADATA, (key, labels)
            assert not {"partitions", "per_partition"} & labels
            for name in check_names:
                (latest, *_) = executions[name]
                assert (latest["status"], latest["partition"]) == ("SUCCEEDED", key), (name, key)
                target = latest["evaluation"]["targetMaterialization"]
                assert target is not None, (name, key)
                assert target["runId"] == materialization["runId"]
                # the same event: the asset page gives whole ms as text, the check seconds
                assert int(target["timestamp"] * 1000) == int(materialization["timestamp"])
                assert (name, key) in succeeded, (name, key)
        assert unpartitioned == {name: [] for name in check_names}


def what_the_ui_shows(url: str, key: str) -> tuple[dict, dict[str, list[dict]]]:
    """A partition's latest materialization and, per check, its executions (latest first)."""
    materializations = graphql(url, MATERIALIZATIONS, {"key": TRADES_HISTORY, "partitions": [key]})[
        "assetOrError"
    ]["assetMaterializations"]
    assert len(materializations) == 1, (key, materializations)
    checks = graphql(url, CHECKS, {"keys": [TRADES_HISTORY]})["assetNodes"][0]
    names = [c["name"] for c in checks["assetChecksOrError"]["checks"]]
    return materializations[0], {name: check_executions(url, name, key) for name in names}


def check_executions(url: str, check: str, partition: str) -> list[dict]:
    variables = {"key": TRADES_HISTORY, "check": check, "partition": partition}
    return graphql(url, CHECK_EXECUTIONS, variables)["assetCheckExecutions"]


def succeeded_partitions(url: str) -> set[tuple[str, str]]:
    """(check, partition) pairs the checks' Partitions view shows as succeeded."""
    node = graphql(url, CHECK_PARTITION_STATUSES, {"keys": [TRADES_HISTORY]})["assetNodes"][0]
    found = set()
    for check in node["assetChecksOrError"]["checks"]:
        for block in (check["partitionStatuses"] or {}).get("ranges", []):
            day = dt.date.fromisoformat(block["primaryDimStartKey"])
            while day <= dt.date.fromisoformat(block["primaryDimEndKey"]):
                for instrument in block["secondaryDim"].get("succeededPartitions", []):
                    found.add((check["name"], f"{day}|{instrument}"))
                day += dt.timedelta(days=1)
    return found


def wait_for_backfill(url: str, backfill_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = graphql(url, BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
        assert result["__typename"] == "PartitionBackfill", result
        if result["status"] not in ("REQUESTED", "CANCELING", "FAILING"):
            return result
        time.sleep(2)
    raise TimeoutError(f"backfill {backfill_id} still running after {timeout}s")
