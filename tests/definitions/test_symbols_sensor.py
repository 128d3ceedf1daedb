"""`symbols_sensor`: the configured instruments become partitions, each of its own venue."""

from __future__ import annotations

import dagster as dg
import pytest

from marketlake.exchanges.binance.endpoints import BinanceEndpoints
from marketlake.instruments import parse_instruments
from marketlake.simulator.data import SimConfig
from marketlake.simulator.server import Simulator
from orchestration.sensors import build_symbols_sensor


@pytest.fixture(scope="module")
def binance():
    with Simulator(SimConfig(trades_per_day=100, symbols=("BTCUSDT",))) as simulator:
        yield BinanceEndpoints(archive_url=simulator.base_url, rest_url=simulator.base_url)


def tick(instance: dg.DagsterInstance, binance: BinanceEndpoints, configured: str):
    sensor = build_symbols_sensor(parse_instruments([configured]))
    return sensor(dg.build_sensor_context(instance=instance, resources={"binance": binance}))


def test_configured_instruments_are_added_under_their_venue_and_unlisted_ones_left_out(binance):
    with dg.instance_for_test() as instance:
        result = tick(instance, binance, "BTCUSDT,XRPUSDT,coinbase:BTC-USD,okx:BTC-USD")
        (request,) = result.dynamic_partitions_requests
        assert request.partitions_def_name == "instruments"
        assert sorted(request.partition_keys) == [
            "binance:BTCUSDT", "coinbase:BTC-USD", "okx:BTC-USD",
        ]  # fmt: skip


def test_on_an_instance_still_to_migrate_the_sensor_adds_nothing_and_says_why(binance):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("symbols", ["BTCUSDT"])
        result = tick(instance, binance, "BTCUSDT")
        assert isinstance(result, dg.SkipReason)
        assert "marketlake migrate" in result.skip_message
