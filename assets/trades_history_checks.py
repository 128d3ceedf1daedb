"""The data-quality checks of `trades_history`, as Great Expectations suites (no Dagster).

A few invariants are not single-column expectations (contiguity, quote = price x qty,
"inside the UTC day"), so they are first expressed as derived columns in Polars and then
validated by GE like any other column: GE stays the one validator, Polars does the math.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from assets.trade_transforms import day_bounds
from marketlake.quality import Check, Expectation

#: quote_qty is price x qty rounded by the exchange to 8 decimals; allow that rounding plus
#: a relative float error far below anything a real mismatch would produce.
QUOTE_ABSOLUTE_SLACK = 1e-8
QUOTE_RELATIVE_TOLERANCE = 1e-9

CHECK_DESCRIPTIONS = {
    "trade_ids_unique": "Every trade id appears once in the partition.",
    "trade_ids_contiguous": "Trade ids have no holes; failures list the missing ranges.",
    "prices_and_sizes_positive": "price > 0 and qty > 0 on every row.",
    "quote_qty_is_price_times_qty": "quote_qty = price x qty within the exchange's rounding.",
    "ts_inside_partition_day": "Every trade's ts falls inside the partition's UTC day.",
    "no_nulls": "No column has a null.",
    "row_count_matches_archive": "Rows taken from the archive = lines in the archive CSV.",
}

#: Statistical or rounding-sensitive checks warn; the rest block downstream work.
WARN_CHECKS = frozenset({"quote_qty_is_price_times_qty"})

_REQUIRED = ("trade_id", "price", "qty", "quote_qty", "ts", "is_buyer_maker", "source")


def check_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """The partition plus the derived columns the expectations read (sorted by trade id)."""
    if not frame.get_column("trade_id").is_sorted():  # loads are sorted: skip the copy
        frame = frame.sort("trade_id")
    return frame.with_columns(
        id_step=pl.col("trade_id").diff().fill_null(1),
        ts_us=pl.col("ts").dt.epoch("us"),
        quote_error=(
            (pl.col("quote_qty") - pl.col("price") * pl.col("qty")).abs()
            - QUOTE_ABSOLUTE_SLACK
            - QUOTE_RELATIVE_TOLERANCE * (pl.col("price") * pl.col("qty")).abs()
        ).clip(lower_bound=0.0),
        # The count of archive rows on every row: GE compares its max with the CSV's line
        # count. (GE's column *sum* on pandas scans every value in Python for Decimals,
        # ~1 s at 5M rows; a max is one vectorized pass.)
        archive_rows=(pl.col("source") == "archive").sum().cast(pl.Int64),
    )


def history_checks(date: dt.date, archive_lines: int | None) -> list[Check]:
    """The checks for one (symbol, date) partition.

    `archive_lines` is the archive CSV's line count, or None when no archive was read (the
    row-count check then compares nothing and passes, saying so in its metadata).
    """
    start, end = day_bounds(date)
    start_us = int(start.timestamp()) * 1_000_000
    end_us = int(end.timestamp()) * 1_000_000 - 1

    def between(column: str, low: float, high: float) -> Expectation:
        return Expectation(
            "ExpectColumnValuesToBeBetween",
            {"column": column, "min_value": low, "max_value": high},
        )

    checks = {
        "trade_ids_unique": [Expectation("ExpectColumnValuesToBeUnique", {"column": "trade_id"})],
        "trade_ids_contiguous": [between("id_step", 1, 1)],
        "prices_and_sizes_positive": [
            Expectation(
                "ExpectColumnValuesToBeBetween",
                {"column": column, "min_value": 0, "strict_min": True},
            )
            for column in ("price", "qty")
        ],
        "quote_qty_is_price_times_qty": [between("quote_error", 0.0, 0.0)],
        "ts_inside_partition_day": [between("ts_us", start_us, end_us)],
        "no_nulls": [
            Expectation("ExpectColumnValuesToNotBeNull", {"column": column}) for column in _REQUIRED
        ],
        "row_count_matches_archive": [
            Expectation(
                "ExpectColumnMaxToBeBetween",
                {
                    "column": "archive_rows",
                    "min_value": archive_lines,
                    "max_value": archive_lines,
                },
            )
        ]
        if archive_lines is not None
        else [],
    }
    return [
        Check(
            name=name,
            description=CHECK_DESCRIPTIONS[name],
            expectations=expectations,
            severity="WARN" if name in WARN_CHECKS else "ERROR",
        )
        for name, expectations in checks.items()
    ]
