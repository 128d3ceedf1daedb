"""`trades_history` for OKX and Deribit instrument-days: their REST histories, through
`dg.materialize` with the endpoints as resources, into a temporary lake."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from assets.partition_key import PartitionKey
from assets.partitioned import great_expectations_process
from assets.trades_history import build_trades_history
from marketlake.exchanges.binance.endpoints import BinanceEndpoints
from marketlake.exchanges.histories import RestHistories
from marketlake.lake import Lake
from marketlake.simulator.data import SimConfig
from marketlake.simulator.server import Simulator
from orchestration.partitions import instrument_day_partitions
from orchestration.run_batches import root_cause

DAY = dt.date(2024, 3, 1)
KEYS = {"okx": f"{DAY}|okx:BTC-USDT", "deribit": f"{DAY}|deribit:BTC-PERPETUAL"}
TRADES_PER_DAY = 600
NOWHERE = "http://127.0.0.1:9"
COLUMNS = ["trade_id", "price", "qty", "ts", "is_buyer_maker"]


@pytest.fixture(scope="module")
def sim():
    symbols = tuple(PartitionKey.parse(k).symbol for k in KEYS.values())
    with Simulator(SimConfig(trades_per_day=TRADES_PER_DAY, symbols=symbols)) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def asset() -> dg.AssetsDefinition:
    return build_trades_history(instrument_day_partitions(dt.date(2017, 7, 1)))


def materialize(asset, sim, lake: Lake, key: str, source: str = "auto"):
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("instruments", [key.partition("|")[2]])
    return dg.materialize(
        [asset],
        partition_key=key,
        instance=instance,
        resources={
            "lake": lake,
            # Binance points nowhere: an OKX or Deribit day must not ask it anything
            "binance": BinanceEndpoints(archive_url=NOWHERE, rest_url=NOWHERE),
            "histories": RestHistories(okx_rest_url=sim.base_url, deribit_rest_url=sim.base_url),
            "great_expectations": great_expectations_process,
        },
        run_config={"ops": {"trades_history": {"config": {"source": source}}}},
        raise_on_error=False,
    )


@pytest.mark.parametrize("exchange", KEYS)
def test_a_venue_day_lands_exactly_the_venues_rest_history(asset, sim, tmp_path, exchange):
    key = PartitionKey.parse(KEYS[exchange])
    lake = Lake(str(tmp_path / "lake"))
    result = materialize(asset, sim, lake, str(key))
    assert result.success, root_cause(result.get_step_failure_events()[0].step_failure_data.error)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks and all(checks.values()), checks  # no archive: its line count check passes
    landed = lake.scan("trades_history", **key.lake_partition()).collect().sort("trade_id")
    truth = sim.ground_truth(key.symbol, DAY)
    assert landed.select(COLUMNS).equals(truth.select(COLUMNS))
    assert landed["source"].unique().to_list() == ["rest"]
    assert landed["exchange"].unique().to_list() == [exchange]
    metadata = result.asset_materializations_for_node("trades_history")[0].metadata
    assert metadata["source"].value == "rest" and metadata["rows"].value == TRADES_PER_DAY


def test_an_archive_source_for_okx_is_refused_and_writes_nothing(asset, sim, tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    result = materialize(asset, sim, lake, KEYS["okx"], source="archive")
    assert not result.success
    message = root_cause(result.get_step_failure_events()[0].step_failure_data.error)
    assert KEYS["okx"] in message and "OKX has no archive of trades" in message
    assert not lake.exists("trades_history")
