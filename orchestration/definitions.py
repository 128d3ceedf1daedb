"""The one Definitions of marketlake: everything meets here, built from the settings."""

from __future__ import annotations

import dagster as dg

from assets.trades_history import build_trades_history
from orchestration.partitions import instrument_day_partitions
from orchestration.resources import build_resources
from orchestration.sensors import build_symbols_sensor
from orchestration.settings import Settings


def build_definitions(settings: Settings) -> dg.Definitions:
    partitions = instrument_day_partitions(settings.start_date)
    trades_history = build_trades_history(partitions)
    history_job = dg.define_asset_job(
        "trades_history_job",
        selection=[trades_history],
        partitions_def=partitions,
        description="Backfill historic trades for the selected instrument-days.",
    )
    return dg.Definitions(
        assets=[trades_history],
        jobs=[history_job],
        sensors=[build_symbols_sensor(settings.symbols)],
        resources=build_resources(settings),
    )


defs = build_definitions(Settings.from_env())
