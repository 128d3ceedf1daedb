"""The partition space: UTC days x instruments, and the glue that turns keys into arguments.

An instrument names its venue (`marketlake.instruments`): keys read
`2024-03-01|binance:BTCUSDT`, `2024-03-01|okx:BTC-USDT`. Instances written before venues
were explicit hold a `symbols` dimension instead (`2024-03-01|BTCUSDT`); `marketlake migrate`
(orchestration/migrate.py) carries them over, and every command refuses to run on such an
instance until it has.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import dagster as dg

from marketlake.instruments import Instrument
from orchestration.errors import CommandFailed

#: Instruments are added at run time (CLI, sensor), so the instrument dimension is dynamic.
instrument_partitions = dg.DynamicPartitionsDefinition(name="instruments")
#: The dimension's name in keys and in the UI.
INSTRUMENT = "instrument"
#: The dynamic partitions of instances from before venues were explicit (bare symbols).
LEGACY_SYMBOLS = "symbols"


def instrument_day_partitions(start_date: dt.date) -> dg.MultiPartitionsDefinition:
    """UTC days from `start_date` x instruments; keys read `2024-03-01|binance:BTCUSDT`.

    Today is a partition too (`end_offset=1`) so the live day can be built on demand; the
    schedules and `marketlake backfill` only ask for closed days.
    """
    return dg.MultiPartitionsDefinition(
        {
            "date": dg.DailyPartitionsDefinition(start_date=start_date.isoformat(), end_offset=1),
            INSTRUMENT: instrument_partitions,
        }
    )


def partition_key(date: dt.date, instrument: Instrument) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"date": date.isoformat(), INSTRUMENT: str(instrument)})


def partition_keys(
    instruments: Iterable[Instrument], start: dt.date, end: dt.date
) -> list[dg.MultiPartitionKey]:
    """Every key of `instruments` x [start, end], instrument-major (one instrument's days
    together)."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    return [partition_key(day, instrument) for instrument in instruments for day in days]


def instruments_of(instance: dg.DagsterInstance) -> list[Instrument]:
    """The instrument partitions of `instance`, sorted."""
    return sorted(
        Instrument.from_key(text)
        for text in instance.get_dynamic_partitions(instrument_partitions.name)
    )


class NotMigrated(CommandFailed):
    """The instance holds partitions from before venues were explicit, and none of now."""


def check_migrated(instance: dg.DagsterInstance) -> None:
    """Refuse an instance whose legacy `symbols` partitions were never carried over:
    its history would silently look empty under the instrument keys."""
    if instance.get_dynamic_partitions(instrument_partitions.name):
        return
    legacy = instance.get_dynamic_partitions(LEGACY_SYMBOLS)
    if legacy:
        raise NotMigrated(
            f"this Dagster instance holds {len(legacy)} symbol partition(s) from before "
            f"partition keys named their venue ({', '.join(sorted(legacy)[:5])}"
            + (", ..." if len(legacy) > 5 else "")
            + "): run `marketlake migrate` once, then run this command again"
        )
