"""Schedules: yesterday's instrument-days, for every instrument, once the day has closed."""

import datetime as dt
from collections.abc import Sequence

import dagster as dg

from marketlake.instruments import Instrument
from orchestration.partitions import instruments_of, partition_key


def yesterday_run_requests(
    scheduled: dt.datetime, instruments: Sequence[Instrument]
) -> list[dg.RunRequest]:
    """One run request per instrument for the UTC day before `scheduled`."""
    day = scheduled.astimezone(dt.UTC).date() - dt.timedelta(days=1)
    return [
        dg.RunRequest(
            run_key=f"{day.isoformat()}|{instrument}",
            partition_key=partition_key(day, instrument),
        )
        for instrument in sorted(instruments)
    ]


def build_yesterday_schedule(
    name: str, job_name: str, cron: str, description: str
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=name,
        job_name=job_name,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=description,
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        instruments = instruments_of(context.instance)
        if not instruments:
            return dg.SkipReason(
                "no instruments yet: `marketlake symbols add BTCUSDT` (or `marketlake migrate` "
                "on an instance from before partition keys named their venue)"
            )
        return yesterday_run_requests(context.scheduled_execution_time, instruments)

    return _schedule
