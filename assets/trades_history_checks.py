"""The trade checks, each declared once (no Dagster): `trades_history` runs them all,
`trades` the ones that hold for a merged day too.

A few invariants are not single-column expectations (contiguity, quote = price x qty,
"inside the UTC day"), so they are first expressed as derived columns in Polars and then
validated by GE like any other column: GE stays the one validator, Polars does the math.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from marketlake.quality import Check, Expectation

#: quote_qty is price x qty rounded by the exchange to 8 decimals; allow that rounding plus
#: a relative float error far below anything a real mismatch would produce.
QUOTE_ABSOLUTE_SLACK = 1e-8
QUOTE_RELATIVE_TOLERANCE = 1e-9

_REQUIRED = ("trade_id", "price", "qty", "quote_qty", "ts", "is_buyer_maker", "source")


def check_frame(frame: pl.DataFrame, day: TradeDay | None = None) -> pl.DataFrame:
    """The partition plus the derived columns the expectations read (sorted by trade id).

    The derived columns are relative to the partition (microseconds into its `date`,
    archive rows over the archive's line count), so the expectations are the same for
    every day and many days' frames can be validated as one (`run_checks_batch`).
    """
    if not frame.get_column("trade_id").is_sorted():  # loads are sorted: skip the copy
        frame = frame.sort("trade_id")
    archive_rows = (pl.col("source") == "archive").sum().cast(pl.Int64)
    lines = day.archive_lines if day is not None else None
    return frame.with_columns(
        id_step=pl.col("trade_id").diff().fill_null(1),
        ts_day_us=pl.col("ts").dt.epoch("us")
        - pl.col("date").cast(pl.Datetime("us")).dt.epoch("us"),
        quote_error=(
            (pl.col("quote_qty") - pl.col("price") * pl.col("qty")).abs()
            - QUOTE_ABSOLUTE_SLACK
            - QUOTE_RELATIVE_TOLERANCE * (pl.col("price") * pl.col("qty")).abs()
        ).clip(lower_bound=0.0),
        # Archive rows minus the CSV's lines, on every row: GE bounds its min and max by 0.
        # (GE's column *sum* on pandas scans every value in Python for Decimals, ~1 s at 5M
        # rows; a min or max is one vectorized pass.)
        archive_surplus=archive_rows - (lines if lines is not None else 0),
    )


@dataclass(frozen=True)
class TradeDay:
    """What the day checks need to know about a partition besides its rows.

    `archive_lines` is the archive CSV's line count, or None when no archive was read (the
    row-count check then does not apply and reports so).
    """

    date: dt.date
    archive_lines: int | None = None


def _between(column: str, low: float, high: float) -> Expectation:
    return Expectation(
        "ExpectColumnValuesToBeBetween", {"column": column, "min_value": low, "max_value": high}
    )


#: Microseconds in a UTC day: `ts_day_us` lies in [0, DAY_US).
DAY_US = 86_400_000_000


def _matches_archive(day: TradeDay) -> list[Expectation]:
    if day.archive_lines is None:
        return []
    return [
        Expectation(kind, {"column": "archive_surplus", "min_value": 0, "max_value": 0})
        for kind in ("ExpectColumnMinToBeBetween", "ExpectColumnMaxToBeBetween")
    ]


DAY_HAS_TRADES = Check(
    "day_has_trades",
    "The day holds at least one trade: Binance publishes an archive only for a day that "
    "traded, so an empty one is damaged, and an empty day never replaces a stored one.",
    expectations=[Expectation("ExpectTableRowCountToBeBetween", {"min_value": 1})],
)
TRADE_IDS_UNIQUE = Check(
    "trade_ids_unique",
    "Every trade id appears once in the partition.",
    expectations=[Expectation("ExpectColumnValuesToBeUnique", {"column": "trade_id"})],
)
TRADE_IDS_CONTIGUOUS = Check(
    "trade_ids_contiguous",
    "Trade ids have no holes; failures list the missing ranges.",
    expectations=[_between("id_step", 1, 1)],
)
PRICES_AND_SIZES_POSITIVE = Check(
    "prices_and_sizes_positive",
    "price > 0 and qty > 0 on every row.",
    expectations=[
        Expectation(
            "ExpectColumnValuesToBeBetween", {"column": column, "min_value": 0, "strict_min": True}
        )
        for column in ("price", "qty")
    ],
)
QUOTE_QTY_IS_PRICE_TIMES_QTY = Check(
    "quote_qty_is_price_times_qty",
    "quote_qty = price x qty within the exchange's rounding.",
    severity="WARN",  # rounding-sensitive: reports, never blocks
    expectations=[_between("quote_error", 0.0, 0.0)],
)
TS_INSIDE_PARTITION_DAY = Check(
    "ts_inside_partition_day",
    "Every trade's ts falls inside the partition's UTC day.",
    expectations=[_between("ts_day_us", 0, DAY_US - 1)],
)
NO_NULLS = Check(
    "no_nulls",
    "No column has a null.",
    expectations=[
        Expectation("ExpectColumnValuesToNotBeNull", {"column": column}) for column in _REQUIRED
    ],
)
ROW_COUNT_MATCHES_ARCHIVE = Check(
    "row_count_matches_archive",
    "Rows taken from the archive = lines in the archive CSV.",
    expectations=_matches_archive,
)

#: The checks of `trades_history`, each run on a day's rows before they are written.
TRADES_HISTORY_CHECKS = [
    DAY_HAS_TRADES,
    TRADE_IDS_UNIQUE,
    TRADE_IDS_CONTIGUOUS,
    PRICES_AND_SIZES_POSITIVE,
    QUOTE_QTY_IS_PRICE_TIMES_QTY,
    TS_INSIDE_PARTITION_DAY,
    NO_NULLS,
    ROW_COUNT_MATCHES_ARCHIVE,
]
