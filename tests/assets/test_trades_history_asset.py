"""`trades_history` through Dagster's own execution, against the simulator on loopback."""

from __future__ import annotations

import dataclasses
import datetime as dt

import dagster as dg
import polars as pl
import pytest

from assets.trades_history import load_and_check_partition
from marketlake.exchanges.binance.archive import BinanceArchive
from marketlake.exchanges.binance.rest import BinanceRest
from marketlake.lake import Lake
from orchestration.run_batches import root_cause

JOB = "trades_history_job"
DAY = dt.date(2024, 3, 1)
RAW_COLUMNS = ["trade_id", "price", "qty", "quote_qty", "ts", "is_buyer_maker"]


def checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    return root_cause(result.get_step_failure_events()[0].step_failure_data.error)


def test_two_symbols_by_two_days_land_exactly_the_exchanges_trades(world):
    symbols = world.sim.config.symbols
    keys = [f"{day}|binance:{symbol}" for symbol in symbols for day in ("2024-03-01", "2024-03-02")]
    for key in keys:
        result = world.run(JOB, key)
        assert result.success
        assert all(checks(result).values()), checks(result)
    for symbol in world.sim.config.symbols:
        for date in (DAY, DAY + dt.timedelta(days=1)):
            landed = world.rows(symbol, date)
            assert landed.select(RAW_COLUMNS).equals(world.truth(symbol, date))
            assert landed["source"].unique().to_list() == ["archive"]


def test_materializing_a_partition_twice_leaves_the_same_rows(world):
    world.run(JOB, f"{DAY}|binance:BTCUSDT")
    first = world.rows("BTCUSDT", DAY).drop("ingested_at")
    world.run(JOB, f"{DAY}|binance:BTCUSDT")
    assert world.rows("BTCUSDT", DAY).drop("ingested_at").equals(first)


def test_materialization_metadata_describes_the_partition(world):
    result = world.run(JOB, f"{DAY}|binance:ETHUSDT")
    metadata = result.asset_materializations_for_node("trades_history")[0].metadata
    truth = world.truth("ETHUSDT", DAY)
    assert metadata["rows"].value == truth.height
    assert metadata["first_trade_id"].value == truth["trade_id"].min()
    assert metadata["last_trade_id"].value == truth["trade_id"].max()
    assert metadata["vwap"].value == pytest.approx(
        (truth["price"] * truth["qty"]).sum() / truth["qty"].sum()
    )
    assert metadata["source"].value == "archive"
    assert metadata["bytes_downloaded"].value > 0


@pytest.mark.parametrize("fault", ["wrong_checksum", "corrupt_zip", "truncated_csv"])
def test_a_damaged_archive_fails_the_partition_and_leaves_the_table_unchanged(world, fault):
    world.run(JOB, f"{DAY}|binance:BTCUSDT")
    before = world.rows("BTCUSDT", DAY)
    version = world.lake.version("trades_history")
    getattr(world.sim.faults, fault).add(("BTCUSDT", DAY))
    result = world.run(JOB, f"{DAY}|binance:BTCUSDT")
    assert not result.success
    assert "BTCUSDT-trades-2024-03-01.zip" in failure_message(result)
    assert world.lake.version("trades_history") == version
    assert world.rows("BTCUSDT", DAY).equals(before)


def test_a_day_missing_from_the_archive_falls_back_to_rest(world):
    world.sim.faults.unpublished.add(("ETHUSDT", DAY))
    result = world.run(JOB, f"{DAY}|binance:ETHUSDT")
    assert result.success, failure_message(result)
    landed = world.rows("ETHUSDT", DAY)
    assert landed.select(RAW_COLUMNS).equals(world.truth("ETHUSDT", DAY))
    assert landed["source"].unique().to_list() == ["rest"]
    assert checks(result)["row_count_matches_archive"]


def test_holes_in_an_archive_day_are_filled_from_rest_before_the_write(world):
    first = world.truth("BTCUSDT", DAY)["trade_id"].min()
    holes = [(first + 100, first + 149), (first + 1000, first + 1000)]
    world.sim.faults.archive_gaps[("BTCUSDT", DAY)] = holes
    result = world.run(JOB, f"{DAY}|binance:BTCUSDT")
    assert result.success
    assert all(checks(result).values()), checks(result)
    landed = world.rows("BTCUSDT", DAY)
    assert landed.select(RAW_COLUMNS).equals(world.truth("BTCUSDT", DAY))
    assert landed.filter(pl.col("source") == "rest").height == 51
    metadata = result.asset_materializations_for_node("trades_history")[0].metadata
    assert metadata["gaps_found"].value == 2
    assert metadata["rows_filled_from_rest"].value == 51


def test_a_batch_run_records_every_partitions_checks(world):
    keys = ["2024-03-01|binance:BTCUSDT", "2024-03-02|binance:ETHUSDT"]
    result = world.run(JOB, *keys)
    assert result.success
    partitions = {
        e.partition for e in result.get_asset_check_evaluations() if e.partition is not None
    }
    assert partitions == {
        "2024-03-01|binance:BTCUSDT", "2024-03-01|binance:ETHUSDT",
        "2024-03-02|binance:BTCUSDT", "2024-03-02|binance:ETHUSDT",
    }  # fmt: skip
    for symbol in world.sim.config.symbols:
        assert world.rows(symbol, dt.date(2024, 3, 2)).height == 4_000


@dataclasses.dataclass(frozen=True)
class FailingLake(Lake):
    """A lake whose disk fails on the next partition write."""

    def replace_partition(self, *args, **kwargs) -> int:
        raise OSError("No space left on device")


def test_a_failed_write_raises_and_leaves_the_rows(world):
    world.run(JOB, f"{DAY}|binance:BTCUSDT")
    before = world.rows("BTCUSDT", DAY)
    version = world.lake.version("trades_history")
    with (
        BinanceArchive(world.sim.base_url) as archive,
        BinanceRest(world.sim.base_url) as rest,
        pytest.raises(OSError, match="No space left"),
    ):
        load_and_check_partition(
            "BTCUSDT", DAY, lake=FailingLake(world.lake.uri), archive=archive, rest=rest
        )
    assert world.lake.version("trades_history") == version
    assert world.rows("BTCUSDT", DAY).equals(before)


def test_a_coinbase_instrument_day_is_refused_as_streamed_only_and_writes_nothing(world):
    # Coinbase serves no trade history: its days come from the stream, never from Binance
    world.instance.add_dynamic_partitions("instruments", ["coinbase:BTC-USD"])
    result = world.run(JOB, f"{DAY}|coinbase:BTC-USD")
    assert not result.success
    message = failure_message(result)
    assert f"{DAY}|coinbase:BTC-USD" in message and "Coinbase serves no trade history" in message
    assert not world.lake.exists("trades_history")
