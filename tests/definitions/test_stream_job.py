"""The `stream_ticks` job with its resources handed in: a lake folder and the simulator."""

from __future__ import annotations

import dagster as dg
import polars as pl

from marketlake.exchanges.binance.endpoints import BinanceEndpoints
from marketlake.lake import Lake
from marketlake.simulator.data import SimConfig
from marketlake.simulator.server import Simulator
from marketlake.simulator.websocket import WsSimulator
from orchestration.live import build_stream_job
from orchestration.resources import LiveEndpoints


def test_the_stream_job_lands_into_the_lake_and_from_the_feeds_it_is_given(tmp_path):
    config = SimConfig(trades_per_day=400_000, symbols=("BTCUSDT",))
    with Simulator(config) as http, WsSimulator(config) as ws:
        live = LiveEndpoints(BinanceEndpoints(rest_url=http.base_url, ws_url=ws.url))
        lake = Lake(str(tmp_path / "lake"))
        result = build_stream_job().execute_in_process(
            instance=dg.DagsterInstance.ephemeral(),
            resources={"lake": lake, "live": live},
            run_config={
                "ops": {"land_ticks": {"config": {"symbols": ["BTCUSDT"], "max_seconds": 3}}}
            },
        )
    assert result.success
    landed = {
        e.step_materialization_data.materialization.asset_key.to_user_string(): e
        for e in result.get_asset_materialization_events()
    }
    assert "ticks_trades" in landed
    rows = pl.read_delta(lake.table_uri("ticks_trades"))
    assert rows.height > 0
    assert rows["symbol"].unique().to_list() == ["BTCUSDT"]


def test_one_mapping_gives_each_exchange_its_websocket_and_only_binance_a_rest_api(tmp_path):
    live = LiveEndpoints(
        BinanceEndpoints(rest_url="http://127.0.0.1:1", ws_url="ws://127.0.0.1:2", weight_limit=9),
        coinbase_ws_url="ws://127.0.0.1:3",
    )
    lake = Lake("s3://bucket/lake", {"AWS_REGION": "eu-west-1"})
    binance = live.stream_config("binance", ["BTCUSDT"], lake, duration_s=5)
    coinbase = live.stream_config("coinbase", ["BTC-USD"], lake)
    assert (binance.ws_url, binance.rest_url, binance.rest_weight_limit) == (
        "ws://127.0.0.1:2",
        "http://127.0.0.1:1",
        9,
    )
    assert (coinbase.ws_url, coinbase.rest_url) == ("ws://127.0.0.1:3", None)
    assert binance.lake == "s3://bucket/lake"
    assert binance.lake_storage_options == {"AWS_REGION": "eu-west-1"}
    assert binance.duration_s == 5


#: A run worker of its own: the job in-process with the resources handed in, stopped by
#: a signal as Dagster stops a run the UI terminates; prints what the run recorded.
CANCELLED_RUN = """
import json, sys
import dagster as dg
from marketlake.exchanges.binance.endpoints import BinanceEndpoints
from marketlake.lake import Lake
from orchestration.live import build_stream_job
from orchestration.resources import LiveEndpoints

ws_url, rest_url, lake = sys.argv[1:4]
result = build_stream_job().execute_in_process(
    instance=dg.DagsterInstance.ephemeral(),
    resources={"lake": Lake(lake), "live": LiveEndpoints(BinanceEndpoints(rest_url=rest_url,
                                                                          ws_url=ws_url))},
    run_config={"ops": {"land_ticks": {"config": {"symbols": ["BTCUSDT"], "max_seconds": 600,
                                                  "report_every_s": 3600}}}},
    raise_on_error=False,
)
print(json.dumps({
    "step_failures": [e.event_specific_data.error.message[:300]
                      for e in result.get_step_failure_events()],
    "materialized": {e.asset_key.to_user_string():
                     e.step_materialization_data.materialization.metadata["rows_landed"].value
                     for e in result.get_asset_materialization_events()},
    "stopped_by": sorted({str(e.step_materialization_data.materialization.metadata["stopped_by"]
                               .value) for e in result.get_asset_materialization_events()}),
    "observations": [e.asset_observation_data.asset_observation.metadata["rows_landed"].value
                     for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"],
}))
"""


def test_cancelling_a_stream_run_ends_it_cleanly_with_its_last_figures(tmp_path):
    import json
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    lake = tmp_path / "lake"
    config = SimConfig(trades_per_day=400_000, symbols=("BTCUSDT",))
    with Simulator(config) as http, WsSimulator(config) as ws:
        worker = subprocess.Popen(
            [sys.executable, "-c", CANCELLED_RUN, ws.url, http.base_url, str(lake)],
            cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        landed = lake / "ticks_trades" / "_delta_log" / "00000000000000000000.json"
        deadline = time.monotonic() + 240
        while not landed.exists():
            assert worker.poll() is None, worker.communicate()
            assert time.monotonic() < deadline, "nothing landed"
            time.sleep(0.1)
        worker.send_signal(signal.SIGINT)  # what the run worker gets on Terminate
        stdout, stderr = worker.communicate(timeout=180)

    assert worker.returncode == 0, stderr[-3000:]
    run = json.loads(stdout.strip().splitlines()[-1])
    assert run["step_failures"] == []
    assert {"ticks_trades", "ticks_quotes"} <= set(run["materialized"])
    assert run["stopped_by"] == ["cancel"]
    assert run["observations"] and run["observations"][-1] > 0  # the last figures
    events = pl.read_delta(str(lake / "stream_events"))
    assert "stop" in events["kind"].to_list()
    # the last figures count every row the final flush committed
    for table, rows in run["materialized"].items():
        assert pl.read_delta(str(lake / table)).height == rows, table
    assert run["observations"][-1] == sum(run["materialized"].values())
