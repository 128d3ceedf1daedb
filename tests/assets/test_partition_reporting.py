"""A run over many instrument-days reports each one as itself, as a one-partition run does.

A UI backfill batches partitions into runs (`BackfillPolicy.multi_run`); the user still
reads each instrument-day's metadata and checks on its own. Here a batch is materialized
in-process with `dg.materialize`, and what Dagster stored is read back from the instance.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from assets.trades_history_checks import TRADES_HISTORY_CHECKS

ASSET = dg.AssetKey("trades_history")
KEYS = [
    "2024-03-01|binance:BTCUSDT",
    "2024-03-01|binance:ETHUSDT",
    "2024-03-02|binance:BTCUSDT",
    "2024-03-02|binance:ETHUSDT",
]


def materialize_batch(world, first: str, last: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [world.defs.resolve_assets_def("trades_history")],  # its resources bound
        instance=world.instance,
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
        raise_on_error=False,
    )


def latest_materialization(instance: dg.DagsterInstance, key: str) -> dg.EventLogRecord:
    filter_ = dg.AssetRecordsFilter(asset_key=ASSET, asset_partitions=[key])
    (record,) = instance.fetch_materializations(filter_, limit=1).records
    return record


def test_each_partition_of_a_batch_has_its_own_materialization_and_metadata(world):
    result = materialize_batch(world, KEYS[0], KEYS[-1])
    assert result.success

    for key in KEYS:
        date, instrument = key.split("|")
        truth = world.truth(instrument.removeprefix("binance:"), dt.date.fromisoformat(date))
        record = latest_materialization(world.instance, key)
        assert record.run_id == result.run_id
        metadata = {k: v.value for k, v in record.asset_materialization.metadata.items()}
        assert metadata["rows"] == truth.height
        assert metadata["first_trade_id"] == truth["trade_id"].min()
        assert metadata["last_trade_id"] == truth["trade_id"].max()
        assert metadata["vwap"] == pytest.approx(
            (truth["price"] * truth["qty"]).sum() / truth["qty"].sum()
        )
        assert metadata["source"] == "archive"
        assert metadata["delta_version"] >= 0
        assert "partitions" not in metadata and "per_partition" not in metadata
        tags = record.event_log_entry.tags or {}
        assert (tags.get("dagster/partition/date"), tags.get("dagster/partition/instrument")) == (
            date,
            instrument,
        )


def test_each_partitions_checks_are_its_own_and_point_at_its_materialization(world):
    result = materialize_batch(world, KEYS[0], KEYS[-1])
    assert result.success

    evaluations = result.get_asset_check_evaluations()
    assert all(e.partition is not None for e in evaluations)  # no batch-level results
    names = [check.name for check in TRADES_HISTORY_CHECKS]
    assert sorted((e.partition, e.check_name) for e in evaluations) == sorted(
        (key, name) for key in KEYS for name in names
    )
    for evaluation in evaluations:
        assert evaluation.passed, (evaluation.partition, evaluation.check_name)
        target = evaluation.target_materialization_data
        record = latest_materialization(world.instance, evaluation.partition)
        assert (target.storage_id, target.run_id) == (record.storage_id, result.run_id)


def test_a_one_partition_run_reports_the_same_way_as_a_batch(world):
    key = KEYS[0]
    result = materialize_batch(world, key, key)
    assert result.success
    record = latest_materialization(world.instance, key)
    rows = world.truth("BTCUSDT", dt.date(2024, 3, 1)).height
    assert record.asset_materialization.metadata["rows"].value == rows
    targets = {
        e.target_materialization_data.storage_id for e in result.get_asset_check_evaluations()
    }
    assert targets == {record.storage_id}
    assert {e.partition for e in result.get_asset_check_evaluations()} == {key}
