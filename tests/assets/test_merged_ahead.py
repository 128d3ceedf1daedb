"""A build's first day of `trades`, merged while Dagster loads (`assets.merged_days`): the run
takes it instead of merging the day again, and never when a table it read has changed."""

import datetime as dt

import pytest

from assets import daily
from assets.merged_days import first_day_merged
from assets.partition_key import PartitionKey
from marketlake.instruments import Instrument

DAY = dt.date(2024, 3, 1)
KEY = f"{DAY}|binance:BTCUSDT"


@pytest.fixture
def merges(monkeypatch) -> list[PartitionKey]:
    """The days the run's `trades` asset merged itself."""
    merged: list[PartitionKey] = []
    merge = daily.merge_trades_partition

    def counted(key, *args, **kwargs):
        merged.append(key)
        return merge(key, *args, **kwargs)

    monkeypatch.setattr(daily, "merge_trades_partition", counted)
    return merged


def merged_ahead(world):
    key = PartitionKey(DAY, Instrument("binance", "BTCUSDT"))
    settings = world.settings
    return first_day_merged(
        key, settings.open_lake(), settings.binance_endpoints(), settings.rest_histories()
    )


def test_a_day_merged_ahead_is_taken_by_the_run_and_writes_the_same_rows(world, merges):
    assert world.run("trades_history_job", KEY).success
    assert world.run("daily_job", KEY).success
    built = world.rows("BTCUSDT", DAY, "trades").drop("ingested_at")
    assert len(merges) == 1

    with merged_ahead(world) as ahead:
        ahead.result()
        result = world.run("daily_job", KEY)

    assert result.success
    assert len(merges) == 1  # the run took the day merged ahead
    assert world.rows("BTCUSDT", DAY, "trades").drop("ingested_at").equals(built)
    assert all(e.passed for e in result.get_asset_check_evaluations())


def test_a_day_merged_before_its_history_changed_is_merged_again(world, merges):
    assert world.run("trades_history_job", KEY).success
    with merged_ahead(world) as ahead:
        ahead.result()
        # the archive day is backfilled again meanwhile: a trade now missing from it
        missing = world.truth("BTCUSDT", DAY)["trade_id"][5]
        world.sim.faults.archive_gaps[("BTCUSDT", DAY)] = [(missing, missing)]
        assert world.run("trades_history_job", KEY).success
        result = world.run("daily_job", KEY)

    assert result.success
    assert len(merges) == 1  # merged by the run, from the history as it is now
    trades = world.rows("BTCUSDT", DAY, "trades")
    assert trades.filter(trade_id=missing)["source"].to_list() == ["rest"]
