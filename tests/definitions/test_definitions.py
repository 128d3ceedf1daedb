"""The one Definitions: loads with no environment, every job resolves, glue is exact."""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from assets.partition_key import PartitionKey
from marketlake import quality
from marketlake.instruments import Instrument
from marketlake.simulator.data import SimConfig
from marketlake.simulator.server import Simulator
from marketlake.simulator.websocket import WsSimulator
from orchestration.definitions import build_definitions
from orchestration.live import JOB_NAME
from orchestration.partitions import partition_keys
from orchestration.run_batches import root_cause
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


def test_the_configured_instruments_are_binances_unless_they_name_their_venue():
    settings = Settings.from_env({"MARKETLAKE_SYMBOLS": "btcusdt, coinbase:BTC-USD"})
    assert settings.instruments == (
        Instrument("binance", "BTCUSDT"),
        Instrument("coinbase", "BTC-USD"),
    )
    with pytest.raises(ValueError, match="MARKETLAKE_SYMBOLS: invalid OKX instrument 'BTCUSDT'"):
        Settings.from_env({"MARKETLAKE_SYMBOLS": "okx:BTCUSDT"})


def test_partition_keys_put_one_instruments_days_together():
    instruments = [Instrument("binance", "BTCUSDT"), Instrument("okx", "BTC-USDT")]
    keys = partition_keys(instruments, dt.date(2024, 3, 1), dt.date(2024, 3, 2))
    assert keys == ["2024-03-01|binance:BTCUSDT", "2024-03-02|binance:BTCUSDT",
                    "2024-03-01|okx:BTC-USDT", "2024-03-02|okx:BTC-USDT"]  # fmt: skip
    assert keys[2].keys_by_dimension == {"date": "2024-03-01", "instrument": "okx:BTC-USDT"}


def test_a_partition_key_splits_into_its_date_venue_and_symbol():
    key = PartitionKey.parse("2024-03-01|binance:BTCUSDT")
    assert (key.date, key.venue, key.symbol, str(key)) == (
        dt.date(2024, 3, 1),
        "binance",
        "BTCUSDT",
        "2024-03-01|binance:BTCUSDT",
    )
    assert key.lake_partition() == {"exchange": "binance", "symbol": "BTCUSDT", "date": key.date}
    with pytest.raises(ValueError, match="malformed partition key"):
        PartitionKey.parse("BTCUSDT")


@pytest.mark.parametrize(
    ("key", "venue", "symbol"),
    [
        ("2024-03-01|coinbase:BTC-USD", "coinbase", "BTC-USD"),
        ("2024-03-01|okx:BTC-USDT", "okx", "BTC-USDT"),
        ("2024-03-01|okx:BTC-USD", "okx", "BTC-USD"),
        ("2024-03-01|deribit:BTC-PERPETUAL", "deribit", "BTC-PERPETUAL"),
        ("2024-03-01|deribit:XRP_USDC-30JUN23-0d625-C", "deribit", "XRP_USDC-30JUN23-0d625-C"),
    ],
)
def test_the_venue_is_read_from_the_key_never_from_the_symbols_shape(key, venue, symbol):
    parsed = PartitionKey.parse(key)
    assert (parsed.venue, parsed.exchange, parsed.symbol, str(parsed)) == (
        venue, venue, symbol, key,
    )  # fmt: skip
    assert parsed.lake_partition()["exchange"] == venue


@pytest.mark.parametrize(
    ("key", "named"),
    [
        ("2024-03-01|BTCUSDT", "names no venue"),
        ("2024-03-01|kraken:XBTUSD", "unknown venue 'kraken'"),
        ("2024-03-01|okx:BTCUSDT", "invalid OKX instrument 'BTCUSDT': expected like BTC-USDT"),
        ("2024-03-01|coinbase:BTC-USDT-SWAP", "invalid Coinbase product"),
        ("2024-03-01|binance:btcusdt", "not in Binance's spelling: expected binance:BTCUSDT"),
        ("March 1st|binance:BTCUSDT", "expected YYYY-MM-DD"),
    ],
)
def test_a_key_whose_symbol_its_venue_does_not_spell_is_refused_naming_both(key, named):
    with pytest.raises(ValueError, match="malformed partition key") as refused:
        PartitionKey.parse(key)
    assert key in str(refused.value) and named in str(refused.value)


def test_the_instrument_dimension_is_dynamic_and_leaves_the_legacy_symbols_alone():
    partitions = build_definitions(Settings()).resolve_assets_def("trades").partitions_def
    assert partitions.partition_dimension_names == ["date", "instrument"]
    assert partitions.get_partitions_def_for_dimension("instrument").name == "instruments"


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


@pytest.fixture
def no_ge_process(monkeypatch):
    """This process as if it had not started Great Expectations' process yet; the one a
    test starts is stopped after it."""
    monkeypatch.setattr(quality, "_process", None)
    yield
    if quality._process is not None:
        quality._process._child.kill()  # mid-import: no need to wait for it
        quality._process.close()


def test_a_stream_run_never_starts_great_expectations(tmp_path, no_ge_process):
    config = SimConfig(trades_per_day=10_000, symbols=("BTCUSDT",))
    with Simulator(config) as http, WsSimulator(config) as ws:
        settings = Settings(
            lake=str(tmp_path / "lake"), binance_rest_url=http.base_url, binance_ws_url=ws.url
        )
        result = (
            build_definitions(settings)
            .resolve_job_def(JOB_NAME)
            .execute_in_process(
                instance=dg.DagsterInstance.ephemeral(),
                run_config={
                    "ops": {"land_ticks": {"config": {"symbols": ["BTCUSDT"], "max_seconds": 1}}}
                },
            )
        )
    assert result.success
    assert quality._process is None


def test_a_run_that_checks_rows_starts_great_expectations_before_its_first_day(
    tmp_path, no_ge_process
):
    # Coinbase serves no history: the step fails on its first day, before any fetch or check.
    key = "2024-03-01|coinbase:BTC-USD"
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("instruments", ["coinbase:BTC-USD"])
    result = (
        build_definitions(Settings(lake=str(tmp_path / "lake")))
        .resolve_job_def("trades_history_job")
        .execute_in_process(partition_key=key, instance=instance, raise_on_error=False)
    )
    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert "serves no trade history" in root_cause(failure.step_failure_data.error)
    assert quality._process is not None
