"""`marketlake backfill --exchange okx|deribit` as a user runs it: a real process, the
venues' REST histories served by the simulator on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from marketlake.instruments import Instrument
from marketlake.simulator.data import SimConfig
from marketlake.simulator.server import Simulator
from orchestration.errors import UsageError
from orchestration.partition_runs import check_history

ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = {"okx": "BTC-USDT", "deribit": "BTC-PERPETUAL"}
TRADES_PER_DAY = 500
DAY = "2024-03-01"


@pytest.fixture(scope="module")
def sim():
    config = SimConfig(trades_per_day=TRADES_PER_DAY, symbols=tuple(SYMBOLS.values()))
    with Simulator(config) as simulator:
        yield simulator


def marketlake(*args: str, sim: Simulator, cwd: Path) -> subprocess.CompletedProcess:
    nowhere = "http://127.0.0.1:9"  # Binance is never asked for another venue's day
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MARKETLAKE_", "DAGSTER_"))},
        "MARKETLAKE_BINANCE_ARCHIVE_URL": nowhere,
        "MARKETLAKE_BINANCE_REST_URL": nowhere,
        "MARKETLAKE_OKX_REST_URL": sim.base_url,
        "MARKETLAKE_DERIBIT_REST_URL": sim.base_url,
        "COLUMNS": "160",
    }
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_backfill_lands_an_okx_and_a_deribit_day_from_their_rest_histories(sim, tmp_path):
    # OKX's instrument on --exchange, Deribit's qualified: one command, a run per instrument
    result = marketlake(
        "backfill", "BTC-USDT", "deribit:BTC-PERPETUAL", "--exchange", "okx",
        "--start", DAY, "--end", DAY, "--lake", "lake", sim=sim, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    assert f"{2 * TRADES_PER_DAY:,} rows" in result.stdout
    assert "2 partitions in" in result.stdout and "failed" not in result.stdout
    landed = pl.read_delta(str(tmp_path / "lake" / "trades_history"))
    columns = ["trade_id", "price", "qty", "ts", "is_buyer_maker"]
    for exchange, symbol in SYMBOLS.items():
        assert f"{DAY}|{exchange}:{symbol}" in result.stdout
        day = landed.filter(pl.col("exchange") == exchange).sort("trade_id")
        assert day.select(columns).equals(sim.ground_truth(symbol, DAY).select(columns))
        assert day.select("symbol", "source").unique().rows() == [(symbol, "rest")]


@pytest.mark.parametrize(
    ("instrument", "source", "message"),
    [
        ("okx:BTC-USDT", "archive", "--source archive: OKX has no archive of trades"),
        ("deribit:BTC-PERPETUAL", "archive", "Deribit has no archive of trades"),
        ("coinbase:BTC-USD", "rest", "no historic trades to backfill for coinbase:BTC-USD"),
    ],
)
def test_a_source_the_venue_does_not_serve_is_refused_before_anything_runs(
    instrument, source, message
):
    # (the CLI turns this UsageError into exit status 2, before any run: tests/cli/test_cli.py)
    with pytest.raises(UsageError, match=message):
        check_history(
            [Instrument.from_key("binance:BTCUSDT"), Instrument.from_key(instrument)], source
        )


def test_every_source_a_venue_serves_passes():
    okx, deribit = Instrument.from_key("okx:BTC-USDT"), Instrument.from_key("deribit:BTC-PERPETUAL")
    for source in ("auto", "rest"):
        check_history([okx, deribit, Instrument.from_key("binance:BTCUSDT")], source)
    check_history([Instrument.from_key("binance:BTCUSDT")], "archive")
