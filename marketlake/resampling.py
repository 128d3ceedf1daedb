"""Bar frequencies, day-aligned bar starts, and exact resampling of one-minute bars.

Bars start at the UTC midnight of their day and step by the frequency, so every day has
the same bar boundaries whatever the frequency; one that does not divide the day leaves
the day's last bar shorter rather than straddling midnight (a bar never mixes two days,
like every table's `date` partition). Resampling from `bars_1m` is exact: the first open,
the last close, the max high and min low, summed volumes and counts, and the VWAP as
sum(quote volume) / sum(volume), which is the trades' own VWAP, not an average of VWAPs.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

import polars as pl

from marketlake.errors import LakeError

#: Frequencies the lake holds as tables; others are resampled from `bars_1m`.
BAR_TABLES: Final = {1: "bars_1m", 60: "bars_1h", 1440: "bars_1d"}
#: The columns of every bars table, in the table contract's order.
BAR_COLUMNS: Final = (
    "exchange",
    "symbol",
    "date",
    "minute",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "vwap",
    "trades",
    "buy_volume",
    "sell_volume",
)
DAY: Final = dt.timedelta(days=1)
_UNITS: Final = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_FREQ: Final = re.compile(r"^\s*(\d+)\s*(s|m|min|h|d)\s*$")


def parse_every(freq: str | dt.timedelta) -> dt.timedelta:
    """A bar length from `"30s"`, `"5m"`/`"5min"`, `"4h"`, `"1d"` or a timedelta, up to a day."""
    if isinstance(freq, dt.timedelta):
        every = freq
    elif isinstance(freq, str) and (match := _FREQ.match(freq.lower())):
        every = dt.timedelta(seconds=int(match[1]) * _UNITS[match[2]])
    else:
        raise LakeError(
            f"frequency {freq!r} is not understood: expected a count and a unit "
            "(s, m, h, d), like '5m', '4h' or '1d', or a timedelta"
        )
    if every <= dt.timedelta(0) or every > DAY:
        raise LakeError(f"frequency {freq!r} must be longer than zero and at most one day")
    if every % dt.timedelta(microseconds=1):
        raise LakeError(f"frequency {freq!r} is not a whole number of microseconds")
    return every


def bar_minutes(freq: str | dt.timedelta) -> int:
    """Whole minutes per bar: the only frequencies `bars_1m` can be resampled to exactly."""
    every = parse_every(freq)
    if every % dt.timedelta(minutes=1):
        raise LakeError(
            f"frequency {freq!r} is not a whole number of minutes: bars are built from "
            "one-minute bars (use realized_volatility or trades for finer windows)"
        )
    return every // dt.timedelta(minutes=1)


def bar_start(ts: str | pl.Expr, every: dt.timedelta) -> pl.Expr:
    """The start of the day-aligned bar holding `ts` (a UTC Datetime column)."""
    ts = pl.col(ts) if isinstance(ts, str) else ts
    day = ts.dt.truncate("1d")
    step = every // dt.timedelta(microseconds=1)
    offset = (ts - day).dt.total_microseconds()
    return day + pl.duration(microseconds=(offset // step) * step)


def resample_bars(bars_1m: pl.LazyFrame, minutes: int) -> pl.LazyFrame:
    """`minutes`-long bars from one-minute bars, exactly; same columns, `minute` = bar start.

    One row per bar that has at least one one-minute bar, in the order the bars' first
    minutes come in: `ml.bars` gives one-minute bars by symbol as given, then by time, and
    gets its resampled bars in that order. The values never depend on the input's order.
    The `date` of a bar is that of its minutes (a bar never crosses midnight).
    """
    if minutes < 1 or minutes > 1440:
        raise LakeError(f"bars must be 1 to 1440 minutes long, got {minutes}")
    first_to_last = pl.col("minute")
    return (
        bars_1m.with_columns(bar=bar_start("minute", dt.timedelta(minutes=minutes)))
        .group_by("exchange", "symbol", "date", "bar", maintain_order=True)
        .agg(
            open=pl.col("open").sort_by(first_to_last).first(),
            high=pl.col("high").max(),
            low=pl.col("low").min(),
            close=pl.col("close").sort_by(first_to_last).last(),
            volume=pl.col("volume").sum(),
            quote_volume=pl.col("quote_volume").sum(),
            trades=pl.col("trades").sum(),
            buy_volume=pl.col("buy_volume").sum(),
            sell_volume=pl.col("sell_volume").sum(),
        )
        .rename({"bar": "minute"})
        .with_columns(
            vwap=pl.when(pl.col("volume") > 0).then(pl.col("quote_volume") / pl.col("volume")),
            trades=pl.col("trades").cast(pl.Int64),
        )
        .select(BAR_COLUMNS)
    )
