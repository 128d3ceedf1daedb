"""The one Definitions of marketlake: everything meets here, built from the settings.

Importing this module reads nothing: `defs` is Dagster's lazy loader, called when a code
location loads; tests call `build_definitions(settings)` with their own settings.
"""

import warnings

import dagster as dg

from assets.daily import build_daily_assets, lake_vacuum
from assets.live import live_specs
from assets.sql_models import build_sql_assets
from assets.trades_history import build_trades_history
from assets.venue_prices import (
    build_venue_prices,
    build_venue_prices_job,
    build_venue_prices_schedule,
)
from orchestration.instance import tune_sqlite
from orchestration.live import build_stream_job, build_stream_supervisor
from orchestration.partitions import instrument_day_partitions
from orchestration.resources import build_resources
from orchestration.schedules import build_yesterday_schedule
from orchestration.sensors import build_symbols_sensor
from orchestration.settings import Settings


def build_definitions(settings: Settings) -> dg.Definitions:
    partitions = instrument_day_partitions(settings.start_date)
    # Batched backfills (`backfill_policy`) are a Dagster beta we rely on deliberately;
    # say so once here rather than in a warning per asset on every load.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        trades_history = build_trades_history(partitions)
        daily = build_daily_assets(partitions)
        models = build_sql_assets(partitions)
    venue_prices = build_venue_prices(partitions)

    history_job = dg.define_asset_job(
        "trades_history_job",
        selection=[trades_history],
        description="Backfill historic trades for the selected instrument-days.",
    )
    daily_job = dg.define_asset_job(
        "daily_job",
        selection=dg.AssetSelection.assets(*daily, *models),
        description="Build trades, quotes, compaction and every SQL model for instrument-days.",
    )
    history_refresh_job = dg.define_asset_job(
        "history_refresh_job",
        # venue_prices_1m is downstream too, but by day: its own job reruns it (07:00 UTC)
        selection=dg.AssetSelection.assets(trades_history).downstream()
        - dg.AssetSelection.assets(venue_prices),
        description="Load the archive's day and rebuild everything downstream of it.",
    )
    vacuum_job = dg.define_asset_job("vacuum_job", selection=[lake_vacuum])
    venue_prices_job = build_venue_prices_job(venue_prices)
    return dg.Definitions(
        # Every step of a run in the run's own process. Dagster's default starts a process
        # per step: each one imports Dagster, these definitions and Great Expectations
        # again (~5 s), and a daily build has 8 steps, which made a daemon-launched run of
        # 10 small days take 45 s where the CLI's took 16 s (benchmarks/fleet.py). Runs of
        # different instrument-days still run side by side (the run queue's concurrency).
        executor=dg.in_process_executor,
        assets=[trades_history, *daily, *models, venue_prices, lake_vacuum, *live_specs],
        jobs=[
            history_job,
            daily_job,
            history_refresh_job,
            vacuum_job,
            venue_prices_job,
            build_stream_job(),
        ],
        schedules=[
            build_yesterday_schedule(
                "daily_schedule",
                "daily_job",
                "15 0 * * *",
                "00:15 UTC: yesterday's trades, quotes and SQL models from the live ticks, "
                "with holes filled from REST.",
            ),
            build_yesterday_schedule(
                "history_schedule",
                "history_refresh_job",
                "0 6 * * *",
                "06:00 UTC, once Binance has published yesterday's archive: load it and "
                "rebuild the daily tables with the archive as the authority.",
            ),
            dg.ScheduleDefinition(
                name="vacuum_schedule",
                job=vacuum_job,
                cron_schedule="0 3 * * *",
                execution_timezone="UTC",
                default_status=dg.DefaultScheduleStatus.RUNNING,
                description="03:00 UTC: delete files compaction replaced, past the retention.",
            ),
            build_venue_prices_schedule("venue_prices_job"),
        ],
        sensors=[
            build_symbols_sensor(settings.instruments),
            build_stream_supervisor(
                settings.stream_stale_after_s,
                settings.stream_exchanges,
                dict(settings.stream_symbols),
            ),
        ],
        resources=build_resources(settings),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """What `dagster dev` / workspace.yaml load: the environment is read when Dagster loads
    the code location, not when this module is imported.

    Every process that loads the location (code server, and each run worker the daemon
    launches) stores a local instance's events in SQLite write-ahead mode from then on.
    (A run that checks rows starts Great Expectations' process as it sets up its
    resources: `assets.partitioned.great_expectations_process`.)"""
    tune_sqlite()
    return build_definitions(Settings.from_env())
