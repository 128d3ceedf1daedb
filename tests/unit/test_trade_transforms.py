import datetime as dt

import polars as pl
import pytest

from assets.trade_transforms import fill_from, missing_id_ranges, summarize, with_lake_keys
from marketlake import schemas
from marketlake.exchanges.binance.parsing import parse_trades_csv


@pytest.fixture
def real_day(real_samples) -> pl.DataFrame:
    raw = parse_trades_csv(real_samples / "binance_vision" / "BTCUSDT-trades-2024-12-31.head.csv")
    return with_lake_keys(
        raw,
        exchange="binance",
        symbol="BTCUSDT",
        date=dt.date(2024, 12, 31),
        source="archive",
        ingested_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )


def test_lake_keys_conform_parser_output_to_the_trades_schema(real_day):
    assert real_day.schema == schemas.TRADES
    assert real_day["date"].unique().to_list() == [dt.date(2024, 12, 31)]


def test_the_real_archive_sample_has_no_missing_ids(real_day):
    assert missing_id_ranges(real_day) == []


def test_missing_ranges_are_inclusive_and_ignore_duplicates():
    frame = pl.DataFrame({"trade_id": [1, 2, 2, 5, 6, 10]})
    assert missing_id_ranges(frame) == [(3, 4), (7, 9)]


def test_a_gap_cut_from_real_rows_is_reported_exactly(real_day):
    holed = real_day.filter(~pl.col("trade_id").is_between(4356587600, 4356587609))
    assert missing_id_ranges(holed) == [(4356587600, 4356587609)]


def test_fill_adds_only_missing_ids_and_the_primary_source_wins(real_day):
    holed = real_day.filter(~pl.col("trade_id").is_between(4356587600, 4356587609))
    rest = real_day.filter(pl.col("trade_id").is_between(4356587595, 4356587612)).with_columns(
        source=pl.lit("rest"), price=pl.lit(1.0)
    )
    filled = fill_from(holed, rest)
    assert filled["trade_id"].to_list() == real_day["trade_id"].to_list()
    assert filled.filter(pl.col("source") == "rest").height == 10
    assert filled.filter(pl.col("trade_id") == 4356587595)["price"].item() != 1.0


def test_summary_gives_the_vwap_of_the_real_rows(real_day):
    stats = summarize(real_day)
    expected = (real_day["price"] * real_day["qty"]).sum() / real_day["qty"].sum()
    assert stats["rows"] == 217
    assert (stats["first_trade_id"], stats["last_trade_id"]) == (4356587539, 4356587755)
    assert stats["vwap"] == pytest.approx(expected, rel=1e-12)
    assert stats["first_ts"] == dt.datetime(2024, 12, 31, 0, 0, 0, 213000, tzinfo=dt.UTC)
    assert stats["rows_by_source"] == {"archive": 217}
