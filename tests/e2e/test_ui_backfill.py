"""A backfill launched through Dagster's GraphQL API, run by a real webserver and daemon.

This is the path the UI takes when a user selects partitions and clicks "Launch backfill":
`dagster dev` (webserver + daemon) on loopback, the simulator as the exchange, a temporary
lake and Dagster home.
"""

from __future__ import annotations

import time

import polars as pl
import pytest
from support.dagster_dev import dagster_dev, graphql, marketlake_cli, marketlake_env

from marketlake.lake import Lake
from marketlake.simulator.data import SimConfig
from marketlake.simulator.server import Simulator

SYMBOLS = ("BTCUSDT", "ETHUSDT")
PARTITIONS = [
    "2024-03-01|BTCUSDT",
    "2024-03-02|BTCUSDT",
    "2024-03-01|ETHUSDT",
    "2024-03-02|ETHUSDT",
]

LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on InvalidSubsetError { message }
    ... on UnauthorizedError { message }
  }
}
"""

STATUS = """
query Status($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status numPartitions runs(limit: 50) { runId status } }
    ... on PythonError { message }
  }
}
"""


@pytest.mark.slow
def test_a_backfill_launched_through_graphql_completes_with_the_daemon(tmp_path):
    config = SimConfig(trades_per_day=5_000, symbols=("BTCUSDT", "ETHUSDT"))
    with Simulator(config) as sim:
        lake = tmp_path / "lake"
        env = marketlake_env(sim.base_url, tmp_path, SYMBOLS)
        marketlake_cli(env, "symbols", "add", "BTCUSDT", "ETHUSDT")

        with dagster_dev(env, tmp_path / "dev.log") as url:
            launched = graphql(
                url,
                LAUNCH,
                {
                    "params": {
                        "assetSelection": [{"path": ["trades_history"]}],
                        "partitionNames": PARTITIONS,
                    }
                },
            )["launchPartitionBackfill"]
            assert launched["__typename"] == "LaunchBackfillSuccess", launched
            backfill = wait_for_backfill(url, launched["backfillId"])

        assert backfill["status"] == "COMPLETED_SUCCESS", (tmp_path / "dev.log").read_text()[-3000:]
        # Batched runs (BackfillPolicy.multi_run): Dagster ranges a multi-partition backfill
        # along the date axis, one run per symbol here, not one run per partition.
        assert len(backfill["runs"]) == len(SYMBOLS)
        landed = Lake(str(lake)).scan("trades_history").collect()
        for key in PARTITIONS:
            date, symbol = key.split("|")
            rows = landed.filter(pl.col("symbol") == symbol, pl.col("date").cast(pl.String) == date)
            truth = sim.ground_truth(symbol, pl.Series([date]).str.to_date()[0])
            assert rows.sort("trade_id").select(truth.columns).equals(truth.sort("trade_id"))


def wait_for_backfill(url: str, backfill_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = graphql(url, STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        assert result["__typename"] == "PartitionBackfill", result
        if result["status"] not in ("REQUESTED", "CANCELING", "FAILING"):
            return result
        time.sleep(2)
    raise TimeoutError(f"backfill {backfill_id} still running after {timeout}s")
