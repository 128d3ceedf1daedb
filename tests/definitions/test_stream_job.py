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
