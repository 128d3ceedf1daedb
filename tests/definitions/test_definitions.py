"""The one Definitions: loads with no environment, every job resolves, glue is exact."""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from assets.partitioned import PartitionKey
from orchestration.definitions import build_definitions
from orchestration.partitions import partition_keys
from orchestration.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_definitions_load_from_workspace_yaml_with_no_environment(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETLAKE_")}
    env["DAGSTER_HOME"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_job_resolves():
    defs = build_definitions(Settings())
    dg.Definitions.validate_loadable(defs)
    for job in defs.resolve_all_job_defs():
        assert job.name


def test_settings_come_from_the_environment_with_production_defaults():
    settings = Settings.from_env({})
    assert settings.binance_archive_url == "https://data.binance.vision"
    assert settings.binance_rest_url == "https://api.binance.com"
    custom = Settings.from_env(
        {"MARKETLAKE_LAKE": "s3://bucket/lake", "MARKETLAKE_S3_ENDPOINT": "http://127.0.0.1:9000"}
    )
    assert custom.lake_storage_options["AWS_ALLOW_HTTP"] == "true"


def test_a_malformed_setting_names_its_variable():
    with pytest.raises(ValueError, match="MARKETLAKE_START_DATE"):
        Settings.from_env({"MARKETLAKE_START_DATE": "yesterday"})


def test_partition_keys_put_one_instruments_days_together():
    keys = partition_keys(["BTCUSDT", "ETHUSDT"], dt.date(2024, 3, 1), dt.date(2024, 3, 2))
    assert keys == ["2024-03-01|BTCUSDT", "2024-03-02|BTCUSDT", "2024-03-01|ETHUSDT",
                    "2024-03-02|ETHUSDT"]  # fmt: skip


def test_a_partition_key_splits_into_its_date_and_symbol():
    key = PartitionKey.parse("2024-03-01|BTCUSDT")
    assert (key.date, key.symbol, str(key)) == (
        dt.date(2024, 3, 1),
        "BTCUSDT",
        "2024-03-01|BTCUSDT",
    )
    assert key.lake_partition() == {"exchange": "binance", "symbol": "BTCUSDT", "date": key.date}
    with pytest.raises(ValueError, match="malformed partition key"):
        PartitionKey.parse("BTCUSDT")


def test_importing_the_definitions_reads_no_environment_until_dagster_loads_them():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETLAKE_")}
    env["MARKETLAKE_START_DATE"] = "yesterday"
    script = (
        "import orchestration.definitions as d\n"
        "print('imported')\n"
        "try:\n"
        "    d.defs()\n"
        "except ValueError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "imported"
    assert "MARKETLAKE_START_DATE" in result.stdout
