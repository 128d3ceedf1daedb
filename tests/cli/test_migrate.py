"""`marketlake migrate` on a Dagster instance written before partition keys named their venue.

The legacy state is made with Dagster's own instance API, as the old code left it: a
`symbols` dynamic partitions definition and materializations and check results under keys
like `2024-03-01|BTCUSDT`. The lake is a real backfill's (its tables always had an
`exchange` column, so it needs no migration).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.event_api import PartitionKeyFilter

from assets.trades_history_checks import DAY_HAS_TRADES
from marketlake.simulator.data import SimConfig
from marketlake.simulator.server import Simulator
from orchestration.errors import CommandFailed
from orchestration.instance import local_instance
from orchestration.migrate import migrate
from orchestration.settings import Settings

DAY = "2024-03-01"
TRADES_HISTORY = dg.AssetKey("trades_history")
CHECK = dg.AssetCheckKey(TRADES_HISTORY, DAY_HAS_TRADES.name)


@pytest.fixture(scope="module")
def sim():
    with Simulator(SimConfig(trades_per_day=2_000, symbols=("BTCUSDT",))) as simulator:
        yield simulator


def marketlake(*args: str, sim: Simulator, cwd: Path) -> subprocess.CompletedProcess:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MARKETLAKE_", "DAGSTER_"))},
        "MARKETLAKE_BINANCE_ARCHIVE_URL": sim.base_url,
        "MARKETLAKE_BINANCE_REST_URL": sim.base_url,
        "MARKETLAKE_LAKE": str(cwd.parent / "lake"),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def legacy_instance(home: Path) -> None:
    """What the old code left: symbol partitions, two materializations of one key (the
    newer one is the one that counts), a check result, and a Coinbase symbol."""
    instance = local_instance(home)
    instance.add_dynamic_partitions("symbols", ["BTCUSDT", "BTC-USD"])
    for rows, version in ((1_500, 3), (2_000, 4)):
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                TRADES_HISTORY,
                partition=f"{DAY}|BTCUSDT",
                metadata={"rows": rows, "source": "archive", "delta_version": version},
                tags={"dagster/partition/date": DAY, "dagster/partition/symbol": "BTCUSDT"},
            )
        )
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            dg.AssetKey("trades"), partition=f"{DAY}|BTC-USD", metadata={"rows": 7}
        )
    )
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=TRADES_HISTORY,
            check_name=DAY_HAS_TRADES.name,
            passed=True,
            metadata={"failing_rows": 0},
            partition=f"{DAY}|BTCUSDT",
            severity=dg.AssetCheckSeverity.ERROR,
        )
    )
    instance.dispose()


def latest(instance: dg.DagsterInstance, asset: dg.AssetKey, partition: str):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset, asset_partitions=[partition]), limit=1
    ).records
    return records[0].asset_materialization if records else None


@pytest.fixture(scope="module")
def migrated(sim, tmp_path_factory):
    """A backfilled lake, a legacy instance beside it, and what each command said."""
    root = tmp_path_factory.mktemp("migrate")
    scratch, work = root / "scratch", root / "work"
    scratch.mkdir()
    work.mkdir()
    backfill = marketlake("backfill", "BTCUSDT", "--start", DAY, sim=sim, cwd=scratch)
    assert backfill.returncode == 0, backfill.stderr
    legacy_instance(work / ".dagster_home")
    runs = {
        "before": marketlake("build", "BTCUSDT", "--start", DAY, sim=sim, cwd=work),
        "first": marketlake("migrate", sim=sim, cwd=work),
        "second": marketlake("migrate", sim=sim, cwd=work),
    }
    return work, runs


@pytest.mark.slow  # the module's legacy instance takes a minute to build
def test_a_command_on_an_unmigrated_instance_fails_naming_the_migration(migrated):
    _, runs = migrated
    assert runs["before"].returncode == 1
    message = " ".join(runs["before"].stderr.split())
    assert "2 symbol partition(s)" in message and "run `marketlake migrate` once" in message


def test_migrate_adds_each_legacy_symbol_as_an_instrument_of_its_venue(migrated):
    work, runs = migrated
    assert runs["first"].returncode == 0, runs["first"].stderr
    said = runs["first"].stdout
    assert "BTCUSDT -> binance:BTCUSDT" in said and "BTC-USD -> coinbase:BTC-USD" in said
    assert "instrument partitions added: 2" in said
    assert "materializations recorded under the new keys: 2" in said
    assert "check results recorded under the new keys: 1" in said
    with dg.DagsterInstance.from_config(str(work / ".dagster_home")) as instance:
        assert sorted(instance.get_dynamic_partitions("instruments")) == [
            "binance:BTCUSDT",
            "coinbase:BTC-USD",
        ]
        # the legacy partitions are left as they were
        assert sorted(instance.get_dynamic_partitions("symbols")) == ["BTC-USD", "BTCUSDT"]


def test_the_latest_materialization_is_carried_with_its_metadata(migrated):
    work, _ = migrated
    with dg.DagsterInstance.from_config(str(work / ".dagster_home")) as instance:
        old = latest(instance, TRADES_HISTORY, f"{DAY}|BTCUSDT")
        new = latest(instance, TRADES_HISTORY, f"{DAY}|binance:BTCUSDT")
        assert new is not None and new.metadata == old.metadata
        assert new.metadata["rows"].value == 2_000  # the newer of the two
        assert new.tags["dagster/partition/instrument"] == "binance:BTCUSDT"
        assert f"migrated from {DAY}|BTCUSDT" in new.description
        assert latest(instance, dg.AssetKey("trades"), f"{DAY}|coinbase:BTC-USD") is not None


def test_the_latest_check_result_is_carried_and_points_at_the_carried_materialization(migrated):
    work, _ = migrated
    with dg.DagsterInstance.from_config(str(work / ".dagster_home")) as instance:
        storage = instance.event_log_storage
        new_key = f"{DAY}|binance:BTCUSDT"
        record = storage.get_latest_asset_check_execution_by_key(
            [CHECK], partition_filter=PartitionKeyFilter(key=new_key)
        )[CHECK]
        evaluation = record.event.dagster_event.event_specific_data
        assert evaluation.passed and evaluation.partition == new_key
        assert evaluation.metadata["failing_rows"].value == 0
        target = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=TRADES_HISTORY, asset_partitions=[new_key]), limit=1
        ).records[0]
        assert evaluation.target_materialization_data.storage_id == target.storage_id


def test_migrating_twice_changes_nothing(migrated):
    work, runs = migrated
    assert runs["second"].returncode == 0, runs["second"].stderr
    assert "already migrated: nothing to do" in runs["second"].stdout
    assert "materializations recorded under the new keys: 0 (2 already there)" in (
        runs["second"].stdout
    )
    with dg.DagsterInstance.from_config(str(work / ".dagster_home")) as instance:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=TRADES_HISTORY, asset_partitions=[f"{DAY}|binance:BTCUSDT"]
            ),
            limit=10,
        ).records
        assert len(records) == 1


def test_build_and_show_work_on_the_migrated_instrument(migrated, sim):
    work, _ = migrated
    build = marketlake("build", "BTCUSDT", "--start", DAY, sim=sim, cwd=work)
    assert build.returncode == 0, build.stderr
    assert f"{DAY}|binance:BTCUSDT" in build.stdout
    show = marketlake(
        "show", "summary", "binance:BTCUSDT", DAY, "--format", "csv", sim=sim, cwd=work
    )
    assert show.returncode == 0, show.stderr
    assert "2000" in show.stdout  # the day's trades, from the backfilled lake
    listed = marketlake("symbols", "list", sim=sim, cwd=work)
    assert listed.stdout.split() == ["binance:BTCUSDT", "coinbase:BTC-USD"]


# --- the migration's rules, in-process on a throwaway instance ---------------------------------


def test_a_legacy_symbol_no_venue_spells_stops_the_migration_before_anything_is_written():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("symbols", ["BTCUSDT", "btc/usd"])
        refused = r"nothing migrated: 'btc/usd' \(invalid Binance symbol"
        with pytest.raises(CommandFailed, match=refused):
            migrate(instance, Settings())
        assert instance.get_dynamic_partitions("instruments") == []


def test_a_new_key_that_has_its_own_materialization_keeps_it():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("symbols", ["BTCUSDT"])
        for partition, rows in ((f"{DAY}|BTCUSDT", 1), (f"{DAY}|binance:BTCUSDT", 2)):
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    TRADES_HISTORY, partition=partition, metadata={"rows": rows}
                )
            )
        done = migrate(instance, Settings())
        assert (done.materializations, done.materializations_present) == (0, 1)
        kept = latest(instance, TRADES_HISTORY, f"{DAY}|binance:BTCUSDT")
        assert kept.metadata["rows"].value == 2


def test_an_instance_without_legacy_partitions_has_nothing_to_migrate():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("instruments", ["okx:BTC-USDT"])
        done = migrate(instance, Settings())
        assert not done.changed and done.legacy_symbols == 0
        assert instance.get_dynamic_partitions("instruments") == ["okx:BTC-USDT"]
