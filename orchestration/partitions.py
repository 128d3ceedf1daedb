"""The partition space: UTC days x instruments, and the glue that turns keys into arguments."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import dagster as dg

#: Instruments are added at run time (CLI, sensor), so the symbol dimension is dynamic.
symbol_partitions = dg.DynamicPartitionsDefinition(name="symbols")


def instrument_day_partitions(start_date: dt.date) -> dg.MultiPartitionsDefinition:
    """UTC days from `start_date` x symbols; keys read `2024-03-01|BTCUSDT`.

    Today is a partition too (`end_offset=1`) so the live day can be built on demand; the
    schedules and `marketlake backfill` only ask for closed days.
    """
    return dg.MultiPartitionsDefinition(
        {
            "date": dg.DailyPartitionsDefinition(start_date=start_date.isoformat(), end_offset=1),
            "symbol": symbol_partitions,
        }
    )


def partition_key(date: dt.date, symbol: str) -> str:
    return dg.MultiPartitionKey({"date": date.isoformat(), "symbol": symbol})


def partition_keys(symbols: Iterable[str], start: dt.date, end: dt.date) -> list[str]:
    """Every key of `symbols` x [start, end], symbol-major (one instrument's days together)."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    return [partition_key(day, symbol) for symbol in symbols for day in days]
