"""End to end through the real Definitions: simulator -> backfill + stream -> trades -> models.

Both simulator sides run on a market clock that starts just after midnight of a past day,
so one instrument-day holds history (REST, the day so far) and live ticks at once, and
the result can be compared with the simulator's ground truth id by id.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

import dagster as dg
import polars as pl
import pytest

from marketlake.lake import Lake
from marketlake.simulator.data import SimConfig, day_raw_trades
from marketlake.simulator.server import Simulator
from marketlake.simulator.websocket import WsSimulator
from orchestration.definitions import build_definitions
from orchestration.settings import Settings

SYMBOLS = ("BTCUSDT", "ETHUSDT")
DAY = dt.date(2024, 3, 1)
START = dt.datetime.combine(DAY, dt.time(0, 0, 20), tzinfo=dt.UTC)
RAW = ["trade_id", "price", "qty", "quote_qty", "ts", "is_buyer_maker"]


def market_clock():
    began = time.monotonic()
    return lambda: START + dt.timedelta(seconds=time.monotonic() - began)


@pytest.mark.slow
def test_history_and_live_ticks_become_clean_trades_and_every_model(tmp_path):
    config = SimConfig(trades_per_day=400_000, symbols=SYMBOLS)
    clock = market_clock()
    with Simulator(config, clock=clock) as http, WsSimulator(config, clock=clock) as ws:
        settings = dataclasses.replace(
            Settings(),
            lake=str(tmp_path / "lake"),
            binance_archive_url=http.base_url,
            binance_rest_url=http.base_url,
            binance_ws_url=ws.url,
        )
        defs = build_definitions(settings)
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions("instruments", [f"binance:{s}" for s in SYMBOLS])

        streamed = defs.resolve_job_def("stream_ticks").execute_in_process(
            instance=instance,
            run_config={"ops": {"land_ticks": {"config": {"max_seconds": 6}}}},
        )
        assert streamed.success
        landed = {
            e.step_materialization_data.materialization.asset_key.to_user_string()
            for e in streamed.get_asset_materialization_events()
        }
        assert {"ticks_trades", "ticks_quotes", "ticks_depth"} <= landed

        for symbol in SYMBOLS:
            key = f"{DAY}|binance:{symbol}"
            history = defs.resolve_job_def("trades_history_job").execute_in_process(
                partition_key=key,
                instance=instance,
                run_config={"ops": {"trades_history": {"config": {"source": "rest"}}}},
            )
            assert history.success
            daily = defs.resolve_job_def("daily_job").execute_in_process(
                partition_key=key, instance=instance
            )
            assert daily.success
            failed = [
                f"{e.asset_key.to_user_string()}.{e.check_name}"
                for e in daily.get_asset_check_evaluations()
                if not e.passed
            ]
            assert failed == []

        # bookTicker and depth20 carry no event time: their ts is the receive time (DESIGN),
        # so under the simulated market clock they land on today's real date.
        today = dt.datetime.now(dt.UTC).date()
        for symbol in SYMBOLS:
            quotes_day = defs.resolve_job_def("daily_job").execute_in_process(
                partition_key=f"{today}|binance:{symbol}", instance=instance
            )
            assert quotes_day.success

    lake = Lake(settings.lake)
    for symbol in SYMBOLS:
        trades = lake.scan("trades", symbol=symbol, date=DAY).collect().sort("trade_id")
        truth = day_raw_trades(symbol, DAY, config).filter(
            pl.col("trade_id") <= trades["trade_id"].max()
        )
        assert trades.select(RAW).equals(truth.sort("trade_id"))  # every id, every value
        live = lake.scan("ticks_trades", symbol=symbol, date=DAY).collect()
        assert live.height > 0 and set(live["source"].unique()) <= {"ws", "rest"}
        for model in ("bars_1m", "bars_1h", "bars_1d", "daily_summary"):
            assert lake.scan(model, symbol=symbol, date=DAY).collect().height > 0, model
        spread = lake.scan("spread_1m", symbol=symbol, date=today).collect()
        assert spread.height > 0 and (spread["spread_min"] > 0).all()
        assert spread["book_vwap_price"].is_not_null().any()
        bars = lake.scan("bars_1m", symbol=symbol, date=DAY).collect()
        assert bars["trades"].sum() == trades.height
