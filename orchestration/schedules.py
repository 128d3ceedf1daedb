"""Schedules: yesterday's instrument-days, for every symbol, once the day has closed."""

import datetime as dt

import dagster as dg

from orchestration.partitions import partition_key, symbol_partitions


def yesterday_run_requests(scheduled: dt.datetime, symbols: list[str]) -> list[dg.RunRequest]:
    """One run request per symbol for the UTC day before `scheduled`."""
    day = scheduled.astimezone(dt.UTC).date() - dt.timedelta(days=1)
    return [
        dg.RunRequest(
            run_key=f"{day.isoformat()}|{symbol}",
            partition_key=partition_key(day, symbol),
        )
        for symbol in sorted(symbols)
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
        symbols = context.instance.get_dynamic_partitions(symbol_partitions.name)
        if not symbols:
            return dg.SkipReason("no symbols yet: `marketlake symbols add BTCUSDT`")
        return yesterday_run_requests(context.scheduled_execution_time, symbols)

    return _schedule
