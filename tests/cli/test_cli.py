"""`marketlake` as a user runs it: a real process, the simulator on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from marketlake.simulator.data import SimConfig
from marketlake.simulator.server import Simulator

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sim():
    with Simulator(SimConfig(trades_per_day=3_000, symbols=("BTCUSDT", "ETHUSDT"))) as simulator:
        yield simulator


def marketlake(*args: str, sim: Simulator, cwd: Path) -> subprocess.CompletedProcess:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MARKETLAKE_", "DAGSTER_"))},
        "MARKETLAKE_BINANCE_ARCHIVE_URL": sim.base_url,
        "MARKETLAKE_BINANCE_REST_URL": sim.base_url,
        "COLUMNS": "160",
    }
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_backfill_lands_every_partition_in_a_run_per_symbol_and_prints_a_summary(sim, tmp_path):
    result = marketlake(
        "backfill", "BTCUSDT,ETHUSDT", "--start", "2024-03-01", "--end", "2024-03-02",
        "--lake", "lake", "--jobs", "2", sim=sim, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "4 partitions in 2 runs, 2 at a time" in " ".join(result.stderr.split())
    assert "12,000 rows" in result.stdout and "4 partitions in" in result.stdout
    assert "(2 runs)" in result.stdout
    assert "2024-03-02|binance:ETHUSDT" in result.stdout
    landed = pl.read_delta(str(tmp_path / "lake" / "trades_history"))
    assert landed.group_by("symbol", "date").len()["len"].to_list() == [3_000] * 4
    # the runs are recorded in the local Dagster instance the UI reads: one per symbol,
    # each over that symbol's two days, each instrument-day materialized on its own
    with dg.DagsterInstance.from_config(str(tmp_path / ".dagster_home")) as instance:
        runs = instance.get_runs()
        ranges = sorted(
            (
                r.tags["dagster/asset_partition_range_start"],
                r.tags["dagster/asset_partition_range_end"],
            )
            for r in runs
        )
        assert ranges == [
            ("2024-03-01|binance:BTCUSDT", "2024-03-02|binance:BTCUSDT"),
            ("2024-03-01|binance:ETHUSDT", "2024-03-02|binance:ETHUSDT"),
        ]
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        materialized = instance.get_materialized_partitions(dg.AssetKey("trades_history"))
        assert len(materialized) == 4


def test_symbols_are_accepted_space_separated_with_a_rest_source(sim, tmp_path):
    result = marketlake(
        "backfill", "btcusdt", "ETHUSDT", "--start", "2024-03-05", "--source", "rest",
        "--lake", "lake", sim=sim, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    landed = pl.read_delta(str(tmp_path / "lake" / "trades_history"))
    assert landed["source"].unique().to_list() == ["rest"]
    assert sorted(landed["symbol"].unique().to_list()) == ["BTCUSDT", "ETHUSDT"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["XRPUSDT", "--start", "2024-03-01"], "not listed on Binance"),
        (["../x", "--start", "2024-03-01"], "invalid Binance symbol '../x'"),
        (["BTCUSDT", "--start", "2024-03-05", "--end", "2024-03-01"], "is before --start"),
        (["BTCUSDT", "--start", "2024-3-1x"], "malformed date '2024-3-1x'"),
        (["BTCUSDT", "--start", "2099-01-01"], "not a complete UTC day"),
        (["BTCUSDT", "--start", "2024-03-01", "--source", "ftp"], "invalid choice: 'ftp'"),
        (
            ["coinbase:BTC-USD", "--start", "2024-03-01"],
            "no historic trades to backfill for coinbase:BTC-USD",
        ),
        (["BTCUSDT", "--exchange", "okx", "--start", "2024-03-01"], "invalid OKX instrument"),
        (["kraken:XBTUSD", "--start", "2024-03-01"], "unknown venue 'kraken'"),
    ],
)
def test_bad_input_exits_2_with_a_clear_error_and_writes_nothing(sim, tmp_path, args, message):
    result = marketlake("backfill", *args, "--lake", "lake", sim=sim, cwd=tmp_path)
    assert result.returncode == 2
    assert message in " ".join(result.stderr.split())
    assert not (tmp_path / "lake").exists()


def test_a_failed_partition_is_reported_and_the_exit_status_says_so(sim, tmp_path):
    import datetime as dt

    sim.faults.wrong_checksum.add(("ETHUSDT", dt.date(2024, 3, 1)))
    try:
        result = marketlake(
            "backfill", "BTCUSDT,ETHUSDT", "--start", "2024-03-01", "--source", "archive",
            "--lake", "lake", sim=sim, cwd=tmp_path,
        )  # fmt: skip
    finally:
        sim.faults.clear()
    assert result.returncode == 1
    assert "ArchiveChecksumError" in result.stdout or "sha256" in result.stdout
    landed = pl.read_delta(str(tmp_path / "lake" / "trades_history"))
    assert landed["symbol"].unique().to_list() == ["BTCUSDT"]


def test_instruments_are_given_on_a_venue_or_qualified_and_listed_qualified(sim, tmp_path):
    added = marketlake("symbols", "add", "BTCUSDT", "okx:btc-usdt", sim=sim, cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert "added: binance:BTCUSDT, okx:BTC-USDT" in added.stdout
    # BTC-USD on Coinbase and on OKX are two instruments, never guessed from the dash
    coinbase = marketlake(
        "symbols", "add", "--exchange", "coinbase", "BTC-USD", "okx:BTC-USD", sim=sim, cwd=tmp_path
    )
    assert coinbase.returncode == 0, coinbase.stderr
    listed = marketlake("symbols", "list", sim=sim, cwd=tmp_path)
    assert listed.stdout.split() == [
        "binance:BTCUSDT", "coinbase:BTC-USD", "okx:BTC-USD", "okx:BTC-USDT",
    ]  # fmt: skip
    refused = marketlake(
        "symbols", "add", "--exchange", "deribit", "BTC/USD", sim=sim, cwd=tmp_path
    )
    assert refused.returncode == 2
    assert "invalid Deribit instrument 'BTC/USD': expected like BTC-PERPETUAL" in refused.stderr


def test_a_stream_lands_one_venue_so_mixed_venues_are_refused(sim, tmp_path):
    result = marketlake(
        "stream", "BTCUSDT", "okx:BTC-USDT", "--duration", "1", "--lake", "lake",
        sim=sim, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "one stream lands one venue" in " ".join(result.stderr.split())
    assert not (tmp_path / "lake").exists()
