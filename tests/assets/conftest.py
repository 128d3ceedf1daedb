"""The exchange and the lake every asset test runs against: the simulator on loopback, a
temporary lake, an ephemeral Dagster instance with the symbols registered."""

from __future__ import annotations

import dataclasses
import datetime as dt

import dagster as dg
import polars as pl
import pytest

from marketlake.lake import Lake
from marketlake.simulator.data import SimConfig
from marketlake.simulator.server import Simulator
from orchestration.definitions import build_definitions
from orchestration.settings import Settings

SYMBOLS = ("BTCUSDT", "ETHUSDT")
TRADES_PER_DAY = 4_000


@pytest.fixture(scope="module")
def sim():
    with Simulator(SimConfig(trades_per_day=TRADES_PER_DAY, symbols=SYMBOLS)) as simulator:
        yield simulator


@pytest.fixture
def world(sim, tmp_path):
    sim.reset()
    settings = dataclasses.replace(
        Settings(),
        lake=str(tmp_path / "lake"),
        binance_archive_url=sim.base_url,
        binance_rest_url=sim.base_url,
    )
    # Disposed here, on this thread: left to the garbage collector, its SQLite connections
    # are closed from whatever thread collects them, which sqlite3 refuses (logged errors).
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("instruments", [f"binance:{s}" for s in SYMBOLS])
        yield World(sim, Lake(settings.lake), settings, build_definitions(settings), instance)


@dataclasses.dataclass
class World:
    sim: Simulator
    lake: Lake
    settings: Settings
    defs: dg.Definitions
    instance: dg.DagsterInstance

    def run(
        self, job: str, *keys: str, archive_url: str | None = None
    ) -> dg.ExecuteInProcessResult:
        """Run `job` over `keys` in one run (a range, as a backfill batches them), in-process.

        `archive_url` points the archive elsewhere for this run (the lake stays the same).
        """
        defs = self.defs
        if archive_url is not None:
            defs = build_definitions(
                dataclasses.replace(self.settings, binance_archive_url=archive_url)
            )
        tags = {}
        if len(keys) > 1:
            tags = {
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[-1],
            }
        return defs.resolve_job_def(job).execute_in_process(
            partition_key=keys[0] if len(keys) == 1 else None,
            instance=self.instance,
            raise_on_error=False,
            tags=tags,
        )

    def rows(self, symbol: str, date: dt.date, table: str = "trades_history") -> pl.DataFrame:
        return self.lake.scan(table, symbol=symbol, date=date).collect().sort("trade_id")

    def truth(self, symbol: str, date: dt.date) -> pl.DataFrame:
        return self.sim.ground_truth(symbol, date).sort("trade_id")
