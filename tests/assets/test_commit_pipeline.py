"""A run's batches are checked and committed while its next instrument-days are fetched.

`materialize_partitions` hands each full batch to a check thread (GE validates in its
process) and a commit thread (Delta writes in Rust) and goes on fetching. These tests run a
small partitioned asset through `dg.materialize` on a real lake, with every day its own
batch, and check what a user relies on: the overlap happens, every day is still checked
and written exactly once, and a refused day or a failed commit fails only its own days.
"""

import datetime as dt
import threading

import dagster as dg
import polars as pl
import pytest

from assets import partitioned
from assets.partition_key import PartitionKey
from assets.partitioned import PartitionResult, PendingWrite, materialize_partitions
from marketlake import schemas
from marketlake.lake import Lake
from marketlake.quality import Check, Expectation, run_checks_batch
from orchestration.run_batches import root_cause

DAYS = [dt.date(2024, 3, 1) + dt.timedelta(days=i) for i in range(4)]
KEYS = [f"{day}|binance:BTCUSDT" for day in DAYS]
PARTITIONS = dg.MultiPartitionsDefinition(
    {
        "date": dg.DailyPartitionsDefinition(start_date="2024-03-01"),
        "instrument": dg.StaticPartitionsDefinition(["binance:BTCUSDT"]),
    }
)
PRICES_POSITIVE = Check(
    "prices_positive",
    "price > 0 on every row.",
    expectations=[
        Expectation("ExpectColumnValuesToBeBetween", {"column": "price", "min_value": 0.0})
    ],
)


def day_rows(key: PartitionKey, price: float = 100.0) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "trade_id": [1, 2, 3],
            "price": [price, price + 1, price + 2],
            "exchange": key.exchange,
            "symbol": key.symbol,
            "date": key.date,
        }
    )


def check_days(frames: dict[str, pl.DataFrame]) -> dict[str, list]:
    return run_checks_batch(frames, [PRICES_POSITIVE], dict.fromkeys(frames))


def asset_of(lake: Lake, work, check=check_days) -> dg.AssetsDefinition:
    @dg.asset(
        name="prices",
        partitions_def=PARTITIONS,
        check_specs=partitioned.check_specs("prices", [PRICES_POSITIVE], PARTITIONS),
    )
    def prices(context: dg.AssetExecutionContext):
        yield from materialize_partitions(context, [PRICES_POSITIVE], work, lake, check)

    return prices


def fetched(key: PartitionKey, frame: pl.DataFrame) -> PartitionResult:
    partition = key.lake_partition()
    return PartitionResult(
        metadata={"rows": frame.height},
        pending=PendingWrite("prices", frame, partition, schemas.MARKET_PARTITION_COLUMNS),
        to_check=frame,
    )


def materialize(asset: dg.AssetsDefinition) -> dg.ExecuteInProcessResult:
    with dg.DagsterInstance.ephemeral() as instance:
        return dg.materialize(
            [asset],
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": KEYS[0],
                "dagster/asset_partition_range_end": KEYS[-1],
            },
            raise_on_error=False,
        )


@pytest.fixture(autouse=True)
def one_day_per_batch(monkeypatch):
    monkeypatch.setattr(partitioned, "COMMIT_ROWS", 1)


def test_a_batch_is_checked_and_committed_while_the_next_day_is_fetched(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    started = {key: threading.Event() for key in KEYS}
    next_day_started_during_check = []

    def work(key: PartitionKey) -> PartitionResult:
        started[str(key)].set()
        return fetched(key, day_rows(key))

    def check(frames: dict[str, pl.DataFrame]) -> dict[str, list]:
        (key,) = frames
        later = KEYS[KEYS.index(key) + 1 :]
        if later:  # a check that ran in line with the fetches would wait here in vain
            next_day_started_during_check.append(started[later[0]].wait(timeout=60))
        return check_days(frames)

    result = materialize(asset_of(lake, work, check))

    assert result.success
    assert next_day_started_during_check == [True, True, True]
    for day in DAYS:
        assert lake.scan("prices", date=day).collect()["trade_id"].to_list() == [1, 2, 3]
    materialized = {str(m.partition) for m in result.asset_materializations_for_node("prices")}
    assert materialized == set(KEYS)
    assert [e.passed for e in result.get_asset_check_evaluations()] == [True] * len(KEYS)


def test_a_batch_is_committed_while_the_next_one_is_checked(tmp_path, monkeypatch):
    lake = Lake(str(tmp_path / "lake"))
    checking = {key: threading.Event() for key in KEYS}
    next_batch_checked_during_commit = []
    replace = Lake.replace_partitions

    def check(frames: dict[str, pl.DataFrame]) -> dict[str, list]:
        (key,) = frames
        checking[key].set()
        return check_days(frames)

    def replace_once_the_next_is_checked(self, table, frame, partitions, partition_by):
        (partition,) = partitions
        later = KEYS[KEYS.index(f"{partition['date']}|binance:BTCUSDT") + 1 :]
        if later:  # a commit that ran in line with the checks would wait here in vain
            next_batch_checked_during_commit.append(checking[later[0]].wait(timeout=60))
        return replace(self, table, frame, partitions, partition_by)

    monkeypatch.setattr(Lake, "replace_partitions", replace_once_the_next_is_checked)
    result = materialize(asset_of(lake, lambda key: fetched(key, day_rows(key)), check))

    assert result.success
    assert next_batch_checked_during_commit == [True, True, True]
    assert lake.scan("prices").collect().height == 3 * len(DAYS)


def test_a_day_too_big_to_hold_beside_others_is_written_before_the_next_is_fetched(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(partitioned._Commits, "IN_FLIGHT_ROWS", 2)  # each day has 3 rows
    lake = Lake(str(tmp_path / "lake"))
    previous_day_readable = []

    def work(key: PartitionKey) -> PartitionResult:
        if key.date > DAYS[0]:
            before = lake.scan("prices", date=key.date - dt.timedelta(days=1)).collect()
            previous_day_readable.append(before.height == 3)
        return fetched(key, day_rows(key))

    assert materialize(asset_of(lake, work)).success
    assert previous_day_readable == [True, True, True]


def test_a_day_refused_by_its_checks_fails_alone_and_keeps_its_previous_rows(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    assert materialize(asset_of(lake, lambda key: fetched(key, day_rows(key)))).success
    bad = PartitionKey.parse(KEYS[1])

    def work(key: PartitionKey) -> PartitionResult:
        return fetched(key, day_rows(key, price=-5.0 if key == bad else 200.0))

    result = materialize(asset_of(lake, work))

    assert not result.success
    prices = {day: lake.scan("prices", date=day).collect()["price"].min() for day in DAYS}
    assert prices == {DAYS[0]: 200.0, DAYS[1]: 100.0, DAYS[2]: 200.0, DAYS[3]: 200.0}
    materialized = {str(m.partition) for m in result.asset_materializations_for_node("prices")}
    assert materialized == set(KEYS) - {KEYS[1]}
    failed = {str(e.partition) for e in result.get_asset_check_evaluations() if not e.passed}
    assert failed == {KEYS[1]}


def test_a_commit_that_fails_fails_only_the_days_it_held(tmp_path, monkeypatch):
    lake = Lake(str(tmp_path / "lake"))
    broken = dt.date(2024, 3, 3)
    replace = Lake.replace_partitions

    def replace_unless_broken(self, table, frame, partitions, partition_by):
        if any(p["date"] == broken for p in partitions):
            raise OSError("disk full")
        return replace(self, table, frame, partitions, partition_by)

    monkeypatch.setattr(Lake, "replace_partitions", replace_unless_broken)

    result = materialize(asset_of(lake, lambda key: fetched(key, day_rows(key))))

    assert not result.success
    assert set(lake.scan("prices").collect()["date"].unique().to_list()) == set(DAYS) - {broken}
    (failure,) = result.get_step_failure_events()
    assert f"{broken}|binance:BTCUSDT: OSError: disk full" in root_cause(
        failure.step_failure_data.error
    )
