"""schema.yml data tests: each passes on clean model output and catches its broken twin."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from dbt_like_sql import TestSpec, build, evaluate_test, load_manifest, run_tests
from dbt_like_sql.memory import MemoryStore
from marketlake import schemas

DAY = dt.date(2025, 1, 1)
PARTITION = {"exchange": "binance", "symbol": "BTCUSDT", "date": DAY}


@pytest.fixture(scope="module")
def built() -> MemoryStore:
    start = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
    n = 600  # 15 s apart: two and a half hours
    trades = schemas.conform(
        pl.DataFrame(
            {
                "exchange": "binance",
                "symbol": "BTCUSDT",
                "date": DAY,
                "trade_id": range(n),
                "price": [93_000 + (i * 7919 % 97) / 10 for i in range(n)],
                "qty": [0.001 * (1 + i % 5) for i in range(n)],
                "quote_qty": 0.0,
                "ts": [start + dt.timedelta(seconds=15 * i) for i in range(n)],
                "is_buyer_maker": [i % 3 == 0 for i in range(n)],
                "source": ["archive"] * 500 + ["ws"] * 100,
                "ingested_at": start,
            }
        ).with_columns(quote_qty=pl.col("price") * pl.col("qty")),
        schemas.TRADES,
    )
    store = MemoryStore({"trades": trades})
    build(load_manifest(), store, PARTITION)
    return store


@pytest.mark.parametrize("model", ["bars_1m", "bars_1h", "bars_1d", "spread_1m", "daily_summary"])
def test_every_data_test_passes_on_clean_output(built: MemoryStore, model: str) -> None:
    results = run_tests(load_manifest(), model, built.tables[model])
    assert results and all(r.passed for r in results), [r for r in results if not r.passed]


def failures(model: str, frame: pl.DataFrame) -> dict[str, int]:
    return {
        r.name: r.failing_rows for r in run_tests(load_manifest(), model, frame) if not r.passed
    }


def test_a_null_is_caught_by_not_null(built: MemoryStore) -> None:
    bars = built.tables["bars_1m"]
    broken = bars.with_columns(
        open=pl.when(pl.int_range(pl.len()) == 3).then(None).otherwise(pl.col("open"))
    )
    assert failures("bars_1m", broken) == {"not_null_open": 1}


def test_a_duplicated_row_is_caught_by_unique_and_the_key_combination(built: MemoryStore) -> None:
    bars = built.tables["bars_1m"]
    broken = pl.concat([bars, bars.slice(10, 1)])
    assert failures("bars_1m", broken) == {
        "unique_minute": 2,
        "unique_combination_of_columns_exchange_symbol_date_minute": 2,
    }


def test_an_out_of_range_value_is_caught_by_accepted_range(built: MemoryStore) -> None:
    bars = built.tables["bars_1m"]
    broken = bars.with_columns(
        volume=pl.when(pl.col("minute") == pl.col("minute").max())
        .then(-1.0)
        .otherwise(pl.col("volume"))
    )
    result = {r.name: r for r in run_tests(load_manifest(), "bars_1m", broken)}
    assert not result["accepted_range_volume"].passed
    assert result["accepted_range_volume"].failing_rows == 1
    assert result["accepted_range_volume"].sample[0]["volume"] == -1.0
    assert result["accepted_range_volume"].severity == "error"


def test_an_impossible_bar_is_caught_by_its_expression_test(built: MemoryStore) -> None:
    bars = built.tables["bars_1h"]
    broken = bars.with_columns(open=pl.col("high") + 1)
    assert failures("bars_1h", broken) == {"open_close_within_high_low": bars.height}


def test_an_unknown_source_is_caught_by_accepted_values(built: MemoryStore) -> None:
    summary = built.tables["daily_summary"]
    assert summary["sources"].to_list() == ["archive,ws"]
    assert failures("daily_summary", summary.with_columns(sources=pl.lit("archive,csv"))) == {
        "accepted_values_sources": 1
    }


def test_a_crossed_book_only_warns(built: MemoryStore) -> None:
    frame = pl.DataFrame({"spread_min": [0.01, -0.02, None]})
    spec = next(t for t in load_manifest().model("spread_1m").tests if t.column == "spread_min")
    result = evaluate_test(spec, frame)
    assert (result.passed, result.failing_rows, result.severity) == (False, 1, "warn")


def test_a_missing_column_fails_its_test_with_a_message() -> None:
    result = evaluate_test(TestSpec("not_null_vwap", "not_null", "vwap", {}), pl.DataFrame())
    assert not result.passed
    assert "vwap" in result.message


def test_range_bounds_can_be_exclusive_and_nulls_pass_all_but_not_null() -> None:
    frame = pl.DataFrame({"x": [0.0, 0.5, 1.0, None]})
    exclusive = TestSpec(
        "r", "accepted_range", "x", {"min_value": 0, "max_value": 1, "inclusive": False}
    )
    inclusive = TestSpec("r", "accepted_range", "x", {"min_value": 0, "max_value": 1})
    assert evaluate_test(exclusive, frame).failing_rows == 2
    assert evaluate_test(inclusive, frame).passed
    assert evaluate_test(TestSpec("u", "unique", "x", {}), frame).passed
    assert evaluate_test(TestSpec("n", "not_null", "x", {}), frame).failing_rows == 1
