"""How the CLI groups instrument-days into runs and reads back each one's outcome."""

from __future__ import annotations

import datetime as dt
import os
import socket

import pytest

from assets.partitioned import failure_reasons
from marketlake.instruments import Instrument
from orchestration.instance import local_instance
from orchestration.orphans import HOST_TAG, PID_TAG
from orchestration.partition_runs import build_venue_prices
from orchestration.run_batches import RunBatch, plan_batches, singles
from orchestration.settings import Settings

D = dt.date(2024, 1, 30)
BTC, ETH = Instrument("binance", "BTCUSDT"), Instrument("binance", "ETHUSDT")


def test_days_of_one_instrument_are_grouped_into_runs_of_at_most_thirty():
    batches = plan_batches([BTC, ETH], D, D + dt.timedelta(days=34))
    assert [(b.instrument, b.first, b.last) for b in batches] == [
        (BTC, D, D + dt.timedelta(days=29)),
        (BTC, D + dt.timedelta(days=30), D + dt.timedelta(days=34)),
        (ETH, D, D + dt.timedelta(days=29)),
        (ETH, D + dt.timedelta(days=30), D + dt.timedelta(days=34)),
    ]
    assert sum(len(b.keys) for b in batches) == 2 * 35


def test_a_run_of_several_days_is_a_partition_range_and_a_single_day_a_key():
    several = RunBatch(BTC, D, D + dt.timedelta(days=2)).run_arguments()
    assert several == {
        "partition_key": None,
        "tags": {
            "dagster/asset_partition_range_start": "2024-01-30|binance:BTCUSDT",
            "dagster/asset_partition_range_end": "2024-02-01|binance:BTCUSDT",
        },
    }
    assert RunBatch(BTC, D, D).run_arguments() == {
        "partition_key": "2024-01-30|binance:BTCUSDT",
        "tags": {},
    }
    assert singles(["2024-01-30|coinbase:BTC-USD"]) == [
        RunBatch(Instrument("coinbase", "BTC-USD"), D, D)
    ]
    # OKX spells BTC-USD too: the key says which venue, the symbol's shape does not
    assert singles(["2024-01-30|okx:BTC-USD"]) == [RunBatch(Instrument("okx", "BTC-USD"), D, D)]


def test_an_impossible_plan_is_refused():
    with pytest.raises(ValueError, match="before start"):
        plan_batches(["BTCUSDT"], D, D - dt.timedelta(days=1))
    with pytest.raises(ValueError, match="at least 1"):
        plan_batches(["BTCUSDT"], D, D, per_run=0)


def test_each_failed_instrument_day_is_read_back_from_the_steps_failure():
    message = (
        "assets.partitioned.PartitionsFailed: trades: 2 of 30 instrument-day(s) not written "
        "(their previous rows stay): 2024-03-01|binance:BTCUSDT: ERROR checks failed: "
        "trade_ids_unique (2 failing rows), no_nulls; "
        "2024-03-04|coinbase:BTC-USD: ValueError: bad CSV; line 3: x"
    )
    assert failure_reasons(message) == {
        "2024-03-01|binance:BTCUSDT": (
            "ERROR checks failed: trade_ids_unique (2 failing rows), no_nulls"
        ),
        "2024-03-04|coinbase:BTC-USD": "ValueError: bad CSV; line 3: x",
    }
    assert failure_reasons("ValueError: something else") == {}


def test_a_venue_prices_run_of_the_cli_carries_its_process_so_a_later_start_can_tell_it_died(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    build_venue_prices(Settings(lake=str(tmp_path / "lake")), [dt.date(2024, 3, 1)])
    (run,) = local_instance().get_runs()
    assert (run.job_name, run.tags["dagster/partition"]) == ("venue_prices_job", "2024-03-01")
    assert run.tags["marketlake/launched_by"] == "cli"
    assert (run.tags[HOST_TAG], run.tags[PID_TAG]) == (socket.gethostname(), str(os.getpid()))
