"""Every check against the real archive rows, clean and deliberately broken."""

import datetime as dt

import polars as pl
import pytest

from assets.trade_transforms import with_lake_keys
from assets.trades_history_checks import TRADES_HISTORY_CHECKS, TradeDay, check_frame
from marketlake.exchanges.binance.parsing import parse_trades_csv
from marketlake.quality import run_checks, run_checks_batch

DAY = dt.date(2025, 1, 1)


@pytest.fixture(scope="module")
def clean(real_samples) -> pl.DataFrame:
    raw = parse_trades_csv(real_samples / "binance_vision" / "BTCUSDT-trades-2025-01-01.head.csv")
    return with_lake_keys(
        raw,
        exchange="binance",
        symbol="BTCUSDT",
        date=DAY,
        source="archive",
        ingested_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )


def failed_checks(frame: pl.DataFrame, archive_lines: int | None = 210) -> dict[str, int]:
    day = TradeDay(DAY, archive_lines)
    outcomes = run_checks(check_frame(frame, day), TRADES_HISTORY_CHECKS, day)
    return {o.name: o.failing_rows for o in outcomes if not o.passed}


def test_the_real_archive_rows_pass_every_check(clean):
    assert failed_checks(clean) == {}


def test_a_gap_fails_only_the_contiguity_check(clean):
    holed = clean.filter(pl.col("trade_id") != 4359935400)
    assert failed_checks(holed, archive_lines=209) == {"trade_ids_contiguous": 1}


def test_a_duplicate_fails_the_uniqueness_check(clean):
    doubled = pl.concat([clean, clean.head(1)])
    assert "trade_ids_unique" in failed_checks(doubled, archive_lines=211)


def test_a_negative_price_fails_the_positivity_check_and_names_the_value(clean):
    broken = clean.with_columns(
        price=pl.when(pl.col("trade_id") == 4359935390).then(-1.0).otherwise(pl.col("price"))
    )
    failures = failed_checks(broken)
    assert failures["prices_and_sizes_positive"] == 1
    outcome = next(
        o
        for o in run_checks(
            check_frame(broken, TradeDay(DAY, 210)), TRADES_HISTORY_CHECKS, TradeDay(DAY, 210)
        )
        if o.name == "prices_and_sizes_positive"
    )
    assert outcome.metadata["failures"]["ExpectColumnValuesToBeBetween(price)"]["sample"] == [-1.0]


def test_a_trade_outside_the_utc_day_fails_the_day_check(clean):
    late = clean.with_columns(
        ts=pl.when(pl.col("trade_id") == 4359935500)
        .then(pl.lit(dt.datetime(2025, 1, 2, 0, 0, 0, 1, tzinfo=dt.UTC)))
        .otherwise(pl.col("ts"))
    )
    assert failed_checks(late) == {"ts_inside_partition_day": 1}


def test_a_quote_quantity_off_by_a_cent_warns(clean):
    off = clean.with_columns(
        quote_qty=pl.when(pl.col("trade_id") == 4359935386)
        .then(pl.col("quote_qty") + 0.01)
        .otherwise(pl.col("quote_qty"))
    )
    assert failed_checks(off) == {"quote_qty_is_price_times_qty": 1}


def test_a_null_fails_the_null_check(clean):
    nulled = clean.with_columns(
        qty=pl.when(pl.col("trade_id") == 4359935386).then(None).otherwise(pl.col("qty"))
    )
    assert "no_nulls" in failed_checks(nulled)


def test_archive_rows_must_match_the_archive_line_count(clean):
    assert failed_checks(clean, archive_lines=211) == {"row_count_matches_archive": 0}


def test_an_empty_day_fails_the_day_has_trades_check(clean):
    assert "day_has_trades" in failed_checks(clean.clear(), archive_lines=0)


def test_the_row_count_check_does_not_apply_without_an_archive(clean):
    outcomes = run_checks(check_frame(clean), TRADES_HISTORY_CHECKS, TradeDay(DAY, None))
    assert "row_count_matches_archive" not in {o.name for o in outcomes}
    assert all(o.passed for o in outcomes)


def next_day(frame: pl.DataFrame, days: int = 1) -> pl.DataFrame:
    """The same real trades moved `days` later, ids continuing: another clean day."""
    ids = frame.height * days
    return frame.with_columns(
        ts=pl.col("ts") + dt.timedelta(days=days),
        date=pl.col("date") + dt.timedelta(days=days),
        trade_id=pl.col("trade_id") + ids,
    )


def batch_outcomes(frames: dict[str, pl.DataFrame], lines: dict[str, int | None]) -> dict:
    days = {key: TradeDay(frame["date"][0] if frame.height else DAY, lines[key])
            for key, frame in frames.items()}  # fmt: skip
    checked = {key: check_frame(frame, days[key]) for key, frame in frames.items()}
    return run_checks_batch(checked, TRADES_HISTORY_CHECKS, days)


def test_days_checked_together_get_the_outcomes_each_gets_alone(clean):
    frames = {"a": clean, "b": next_day(clean), "c": next_day(clean, 2)}
    together = batch_outcomes(frames, {"a": 210, "b": 210, "c": None})
    for key, frame in frames.items():
        day = TradeDay(frame["date"][0], None if key == "c" else 210)
        assert together[key] == run_checks(check_frame(frame, day), TRADES_HISTORY_CHECKS, day)
    assert all(o.passed and o.metadata == {"rows_checked": 210} for o in together["a"])


def test_a_bad_day_checked_with_good_ones_fails_alone_and_names_its_rows(clean):
    broken = next_day(clean).with_columns(
        price=pl.when(pl.col("trade_id") == 4359935390 + 210).then(-1.0).otherwise(pl.col("price"))
    )
    frames = {"good": clean, "broken": broken, "empty": clean.clear()}
    outcomes = batch_outcomes(frames, {"good": 210, "broken": 210, "empty": 0})
    failed = {key: {o.name for o in found if not o.passed} for key, found in outcomes.items()}
    assert failed["good"] == set()
    assert failed["broken"] == {"prices_and_sizes_positive", "quote_qty_is_price_times_qty"}
    assert "day_has_trades" in failed["empty"]
    positive = next(o for o in outcomes["broken"] if o.name == "prices_and_sizes_positive")
    assert positive.failing_rows == 1
    assert positive.metadata["failures"]["ExpectColumnValuesToBeBetween(price)"]["sample"] == [-1.0]
