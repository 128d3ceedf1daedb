"""The daily tables through Dagster: merge, gap fill, compaction, SQL models, schedules."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading

import dagster as dg
import polars as pl
import pytest

from assets.partition_key import PartitionKey
from assets.trade_transforms import with_lake_keys
from marketlake import schemas
from marketlake.instruments import Instrument
from marketlake.lake import Lake
from marketlake.simulator.data import SimConfig
from marketlake.simulator.server import Simulator
from orchestration.definitions import build_definitions
from orchestration.schedules import yesterday_run_requests
from orchestration.settings import Settings

DAY = dt.date(2024, 3, 1)
KEY = f"{DAY}|binance:BTCUSDT"
RAW = ["trade_id", "price", "qty", "quote_qty", "ts", "is_buyer_maker"]
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def ticks(
    frame: pl.DataFrame,
    received: dt.datetime = NOW,
    exchange: str = "binance",
    symbol: str = "BTCUSDT",
) -> pl.DataFrame:
    rows = with_lake_keys(
        frame, exchange=exchange, symbol=symbol, date=DAY, source="ws", ingested_at=received
    )
    return schemas.conform(rows.with_columns(received_at=pl.lit(received)), schemas.TICKS_TRADES)


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    for event in result.get_asset_materialization_events():
        m = event.step_materialization_data.materialization
        if m.asset_key.to_user_string() == asset:
            return {k: v.value for k, v in m.metadata.items()}
    raise AssertionError(f"{asset} was not materialized")


def test_trades_merge_history_and_live_into_one_row_per_trade_id(world, sim):
    lake = world.lake
    assert world.run("trades_history_job", KEY).success
    truth = sim.ground_truth("BTCUSDT", DAY)
    live = pl.concat([truth.slice(100, 500), truth.slice(300, 400)])  # at-least-once overlap
    disagreeing = truth.slice(50, 1).with_columns(price=pl.col("price") + 1.0)
    lake.append(
        "ticks_trades", ticks(pl.concat([live, disagreeing])), schemas.MARKET_PARTITION_COLUMNS
    )

    result = world.run("daily_job", KEY)
    assert result.success
    trades = lake.scan("trades", symbol="BTCUSDT", date=DAY).collect().sort("trade_id")
    assert trades.select(RAW).equals(truth.sort("trade_id"))
    assert trades["source"].unique().to_list() == ["archive"]
    meta = metadata(result, "trades")
    assert meta["duplicates_removed"] == 901
    assert meta["conflicts"] == 1
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()
              if e.asset_key.to_user_string() == "trades"}  # fmt: skip
    assert checks["sources_agree"] is False
    assert all(passed for name, passed in checks.items() if name != "sources_agree")


def test_holes_in_the_live_record_are_filled_from_rest(world, sim):
    lake = world.lake
    truth = sim.ground_truth("BTCUSDT", DAY).sort("trade_id")
    window = truth.slice(0, 2_000)
    holed = window.filter(
        ~pl.col("trade_id").is_between(window["trade_id"][700], window["trade_id"][899])
    )
    lake.append("ticks_trades", ticks(holed), schemas.MARKET_PARTITION_COLUMNS)

    result = world.run("daily_job", KEY)
    assert result.success
    trades = lake.scan("trades", symbol="BTCUSDT", date=DAY).collect().sort("trade_id")
    assert trades.select(RAW).equals(window)
    assert trades.filter(pl.col("source") == "rest").height == 200
    assert metadata(result, "trades")["gaps_found"] == 1


@pytest.mark.parametrize(
    ("exchange", "symbol"), [("okx", "BTC-USDT"), ("deribit", "BTC-PERPETUAL")]
)
def test_holes_in_another_venues_live_record_are_filled_from_its_rest_history(
    tmp_path, exchange, symbol
):
    with Simulator(SimConfig(trades_per_day=4_000, symbols=(symbol,))) as venue_sim:
        settings = dataclasses.replace(
            Settings(),
            lake=str(tmp_path / "lake"),
            okx_rest_url=venue_sim.base_url,
            deribit_rest_url=venue_sim.base_url,
        )
        lake = Lake(settings.lake)
        window = venue_sim.ground_truth(symbol, DAY).sort("trade_id").slice(0, 1_000)
        hole = window["trade_id"][300], window["trade_id"][449]
        holed = window.filter(~pl.col("trade_id").is_between(*hole))
        lake.append(
            "ticks_trades", ticks(holed, exchange=exchange, symbol=symbol),
            schemas.MARKET_PARTITION_COLUMNS,
        )  # fmt: skip
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions("instruments", [f"{exchange}:{symbol}"])
        job = build_definitions(settings).resolve_job_def("daily_job")
        result = job.execute_in_process(
            partition_key=f"{DAY}|{exchange}:{symbol}", instance=instance, raise_on_error=False
        )

    assert result.success
    trades = lake.scan("trades", exchange=exchange, symbol=symbol, date=DAY).collect()
    assert trades.sort("trade_id").select(RAW).equals(window.select(RAW))
    assert trades.filter(pl.col("source") == "rest").height == 150
    assert metadata(result, "trades")["gaps_remaining"] == []


def test_the_sql_models_build_on_the_days_trades_and_pass_their_tests(world, sim):
    lake = world.lake
    assert world.run("trades_history_job", KEY).success
    result = world.run("daily_job", KEY)
    assert result.success
    failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    assert failed == []
    truth = sim.ground_truth("BTCUSDT", DAY)
    bars = lake.scan("bars_1m", symbol="BTCUSDT", date=DAY).collect()
    assert bars["trades"].sum() == truth.height
    assert bars["volume"].sum() == pytest.approx(truth["qty"].sum(), rel=1e-12)
    summary = lake.scan("daily_summary", symbol="BTCUSDT", date=DAY).collect()
    assert summary["vwap"].item() == pytest.approx(
        (truth["price"] * truth["qty"]).sum() / truth["qty"].sum(), rel=1e-12
    )


def test_compaction_while_the_stream_appends_loses_nothing(tmp_path, sim):
    lake = Lake(str(tmp_path))
    truth = sim.ground_truth("BTCUSDT", DAY).sort("trade_id")
    batches = [ticks(truth.slice(i * 50, 50)) for i in range(60)]
    for batch in batches[:40]:
        lake.append("ticks_trades", batch, schemas.MARKET_PARTITION_COLUMNS)
    key = PartitionKey(DAY, Instrument("binance", "BTCUSDT"))
    before = len(lake.partition_files("ticks_trades", key.lake_partition()))

    def keep_appending() -> None:
        for batch in batches[40:]:
            lake.append("ticks_trades", batch, schemas.MARKET_PARTITION_COLUMNS)

    writer = threading.Thread(target=keep_appending)
    writer.start()
    lake.compact_partition("ticks_trades", key.lake_partition())
    writer.join()
    landed = lake.scan("ticks_trades", symbol="BTCUSDT", date=DAY).collect()
    assert sorted(landed["trade_id"].to_list()) == truth["trade_id"].head(3_000).to_list()
    assert before == 40
    assert len(lake.partition_files("ticks_trades", key.lake_partition())) <= 21


def test_compaction_leaves_few_files_and_the_same_rows(world, sim):
    lake = world.lake
    truth = sim.ground_truth("BTCUSDT", DAY).sort("trade_id")
    for i in range(30):
        lake.append(
            "ticks_trades", ticks(truth.slice(i * 100, 100)), schemas.MARKET_PARTITION_COLUMNS
        )
    result = world.run("daily_job", KEY)
    assert result.success
    meta = metadata(result, "ticks_compaction")
    assert (meta["ticks_trades_files_before"], meta["ticks_trades_files_after"]) == (30, 1)
    landed = lake.scan("ticks_trades", symbol="BTCUSDT", date=DAY).collect()
    assert landed.height == 3_000


def test_the_daily_schedule_asks_for_yesterday_for_every_instrument():
    requests = yesterday_run_requests(
        dt.datetime(2024, 3, 2, 0, 15, tzinfo=dt.UTC),
        [Instrument("okx", "BTC-USDT"), Instrument("binance", "ETHUSDT")],
    )
    assert [r.partition_key for r in requests] == [
        "2024-03-01|binance:ETHUSDT",
        "2024-03-01|okx:BTC-USDT",
    ]


def test_the_schedule_reads_the_instruments_from_the_instance(sim):
    defs = build_definitions(Settings())
    schedule = defs.resolve_schedule_def("daily_schedule")
    with dg.instance_for_test() as instance:
        empty = schedule.evaluate_tick(
            dg.build_schedule_context(
                instance=instance,
                scheduled_execution_time=dt.datetime(2024, 3, 2, 0, 15, tzinfo=dt.UTC),
                repository_def=defs.get_repository_def(),
            )
        )
        assert empty.skip_message and "no instruments" in empty.skip_message
        instance.add_dynamic_partitions("instruments", ["binance:BTCUSDT", "binance:ETHUSDT"])
        tick = schedule.evaluate_tick(
            dg.build_schedule_context(
                instance=instance,
                scheduled_execution_time=dt.datetime(2024, 3, 2, 0, 15, tzinfo=dt.UTC),
                repository_def=defs.get_repository_def(),
            )
        )
    assert [r.partition_key for r in tick.run_requests] == [
        "2024-03-01|binance:BTCUSDT",
        "2024-03-01|binance:ETHUSDT",
    ]


def test_vacuum_deletes_the_files_compaction_replaced_and_keeps_every_row(world, sim):
    lake = world.lake
    truth = sim.ground_truth("BTCUSDT", DAY).sort("trade_id")
    for i in range(5):
        batch = ticks(truth.slice(i * 100, 100))
        lake.append("ticks_trades", batch, schemas.MARKET_PARTITION_COLUMNS)
    lake.compact_partition(
        "ticks_trades", PartitionKey(DAY, Instrument("binance", "BTCUSDT")).lake_partition()
    )
    defs = build_definitions(Settings(lake=lake.uri))
    result = defs.resolve_job_def("vacuum_job").execute_in_process(
        run_config={"ops": {"lake_vacuum": {"config": {"retention_hours": 0}}}}
    )
    materialization = result.asset_materializations_for_node("lake_vacuum")[0]
    assert materialization.metadata["ticks_trades_files_deleted"].value == 5
    assert lake.scan("ticks_trades").collect().height == 500
