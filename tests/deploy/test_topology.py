"""The production topology on loopback: each part its own process, as on Kubernetes.

A code server (`dagster api grpc`) serves the Definitions; the webserver and the daemon load
no code, workspace.yaml points them at it; the instance is deploy/dagster.yaml on a real
PostgreSQL, the lake an `s3://` root on a real S3-compatible server (SeaweedFS), the
exchange the simulator; every run is queued, dequeued by the daemon and started by the
code server as a process of its own (DefaultRunLauncher). A user drives it as in the UI:
a backfill launched through the webserver's GraphQL, a stream run launched and terminated.

The daemon is started last, once the backfill is launched: its backfill loop wakes every
30 s, so it plans the backfill on its first pass instead of a test waiting half a minute
for the next one (a backfill launched while the daemon is down is what a daemon restart
finds, too), and reports it complete on a later pass. The stream run is launched once the
backfill's run has finished, so that it fills that wait instead of slowing the backfill.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from collections.abc import Iterator

import polars as pl
import pytest

import marketlake as ml
from deploy.loopback.graphql import FINISHED
from deploy.loopback.seaweed import S3Server, SeaweedS3
from deploy.loopback.topology import ROOT, Topology, code_environment
from marketlake.simulator.data import SimConfig
from marketlake.simulator.server import Simulator
from marketlake.simulator.websocket import WsSimulator

SYMBOL = "BTCUSDT"
DAYS = [dt.date(2024, 3, 1), dt.date(2024, 3, 2), dt.date(2024, 3, 3)]
PARTITIONS = [f"{day}|binance:{SYMBOL}" for day in DAYS]
#: Enough trades that the websocket sends one every two seconds or so; small archive days.
TRADES_PER_DAY = 50_000


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with SeaweedS3(bucket="marketlake") as server:
        yield server


@pytest.mark.slow
def test_a_backfill_and_a_stream_run_through_the_production_topology(postgres, s3, tmp_path):
    config = SimConfig(trades_per_day=TRADES_PER_DAY, symbols=(SYMBOL,))
    lake = ml.Lake(s3.uri("topology", "lake"), s3.storage_options)
    with Simulator(config) as http, WsSimulator(config) as ws:
        topology = Topology(
            tmp_path,
            instance_env=postgres.create_database("topology").env,
            code_env=code_environment(
                lake=lake.uri, s3_env=s3.env, http_url=http.base_url, ws_url=ws.url,
                symbols=[SYMBOL],
            ),
        )  # fmt: skip
        try:
            topology.start_code_server()
            # The symbol, checked against the exchange, as a user adds it (beside the
            # webserver's start: both only need the instance).
            symbols = subprocess.Popen(
                [sys.executable, "-m", "orchestration.cli", "symbols", "add", SYMBOL],
                cwd=ROOT, env=topology.code_env, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            topology.start_webserver()
            _, errors = symbols.communicate(timeout=120)
            assert symbols.returncode == 0, errors
            web = topology.webserver()
            launched = time.monotonic()
            backfill_id = web.launch_backfill("trades_history", PARTITIONS)
            topology.start_daemon()
            _poll(
                lambda: _finished(web.backfill(backfill_id)["runs"]),
                "the backfill's runs to finish",
            )
            stream_id = web.launch_run(
                "stream_ticks",
                {"ops": {"land_ticks": {"config": {"symbols": [SYMBOL], "max_seconds": 600}}}},
            )

            deadline = time.monotonic() + 240
            while not _ticks(lake).height:
                assert web.run(stream_id)["status"] not in FINISHED, "the stream run ended"
                assert time.monotonic() < deadline, "no ticks landed in the S3 lake"
                time.sleep(1)
            web.terminate(stream_id)  # the run page's Terminate
            stream = web.wait_for_run(stream_id)
            backfill = web.wait_for_backfill(backfill_id)
            backfill_s = time.monotonic() - launched
        finally:
            topology.stop()
        leftovers = topology.leftovers()
        truth = {day: http.ground_truth(SYMBOL, day) for day in DAYS}

    # The backfill: every instrument-day in the S3 lake, exactly the exchange's trades.
    assert backfill["status"] == "COMPLETED_SUCCESS", backfill
    assert backfill["numPartitions"] == len(PARTITIONS)
    assert {run["status"] for run in backfill["runs"]} == {"SUCCESS"}
    history = ml.read("trades_history", SYMBOL, DAYS[0], DAYS[-1], lake=lake).collect()
    for day, expected in truth.items():
        rows = history.filter(pl.col("date") == day).sort("trade_id").select(expected.columns)
        assert rows.equals(expected.sort("trade_id")), day

    # The stream: terminated, it ended cleanly with its last figures, and they are the lake's.
    assert stream["status"] == "CANCELED"
    assert stream["stepStats"] == [{"stepKey": "land_ticks", "status": "SUCCESS"}]
    events = stream["eventConnection"]["events"]
    assert not [e for e in events if e["__typename"] == "ExecutionStepFailureEvent"]
    landed = {
        "/".join(e["assetKey"]["path"]): {m["label"]: m for m in e["metadataEntries"]}
        for e in events
        if e["__typename"] == "MaterializationEvent"
    }
    assert {"ticks_trades", "ticks_quotes"} <= set(landed)
    assert {m["stopped_by"]["text"] for m in landed.values()} == {"cancel"}
    ticks = _ticks(lake)
    assert ticks.height == landed["ticks_trades"]["rows_landed"]["intValue"] > 0
    assert ticks["symbol"].unique().to_list() == [SYMBOL]

    assert leftovers == [], "processes of the topology outlived its stop"
    _report(backfill, backfill_s)


def _poll(condition, what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _finished(runs: list[dict]) -> bool:
    return bool(runs) and all(run["status"] in FINISHED for run in runs)


def _ticks(lake: ml.Lake) -> pl.DataFrame:
    """Every live trade landed so far (none before the table's first commit)."""
    if not lake.exists("ticks_trades"):
        return pl.DataFrame()
    return lake.scan("ticks_trades").collect()


def _report(backfill: dict, wall_s: float) -> None:
    runs = [(run["endTime"] - run["startTime"]) for run in backfill["runs"]]
    print(
        f"\nbackfill of {backfill['numPartitions']} partitions: launch -> COMPLETED_SUCCESS "
        f"{wall_s:.1f}s; {len(runs)} run(s) of {', '.join(f'{s:.1f}s' for s in runs)}"
    )
