"""A backfill launched through Dagster's GraphQL API, run by a real webserver and daemon.

This is the path the UI takes when a user selects partitions and clicks "Launch backfill":
`dagster dev` (webserver + daemon) on loopback, the simulator as the exchange, a temporary
lake and Dagster home.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import polars as pl
import pytest

from marketlake.lake import Lake
from marketlake.simulator.data import SimConfig
from marketlake.simulator.server import Simulator

ROOT = Path(__file__).resolve().parents[2]
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(url: str, query: str, variables: dict) -> dict:
    response = httpx.post(
        f"{url}/graphql", json={"query": query, "variables": variables}, timeout=30
    )
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


@pytest.mark.slow
def test_a_backfill_launched_through_graphql_completes_with_the_daemon(tmp_path):
    config = SimConfig(trades_per_day=5_000, symbols=("BTCUSDT", "ETHUSDT"))
    with Simulator(config) as sim:
        home = tmp_path / "dagster_home"
        home.mkdir()
        lake = tmp_path / "lake"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MARKETLAKE_")},
            "DAGSTER_HOME": str(home),
            "MARKETLAKE_LAKE": str(lake),
            "MARKETLAKE_BINANCE_ARCHIVE_URL": sim.base_url,
            "MARKETLAKE_BINANCE_REST_URL": sim.base_url,
            "MARKETLAKE_SYMBOLS": "BTCUSDT,ETHUSDT",
        }
        added = subprocess.run(
            [sys.executable, "-m", "orchestration.cli", "symbols", "add", "BTCUSDT", "ETHUSDT"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(port),
             "-w", str(ROOT / "workspace.yaml")],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=(tmp_path / "dev.log").open("w"),
            start_new_session=True,
        )  # fmt: skip
        try:
            wait_until_serving(url, server)
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
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()

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


def wait_until_serving(url: str, server: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, "dagster dev exited early"
        try:
            if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(f"dagster dev did not serve {url} within {timeout}s")


def wait_for_backfill(url: str, backfill_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = graphql(url, STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        assert result["__typename"] == "PartitionBackfill", result
        if result["status"] not in ("REQUESTED", "CANCELING", "FAILING"):
            return result
        time.sleep(2)
    raise TimeoutError(f"backfill {backfill_id} still running after {timeout}s")
