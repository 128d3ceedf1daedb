"""Bars of any whole-minute length: read from their tables or resampled from bars_1m exactly.

Expected bars are computed with plain Python loops over the stored one-minute rows, not
with the code under test's expressions.
"""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest
from api.lakes import DAYS

import marketlake as ml
from marketlake.lake import Lake
from marketlake.resampling import BAR_COLUMNS, bar_minutes

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def one_minute_rows(lake: Lake, symbols: list[str], days: list[dt.date]) -> list[dict]:
    return (
        pl.scan_delta(lake.table_uri("bars_1m"))
        .filter(pl.col("symbol").is_in(symbols), pl.col("date").is_in(days))
        .collect()
        .to_dicts()
    )


def resampled_by_hand(rows: list[dict], minutes: int) -> list[dict]:
    """Day-aligned buckets of `minutes`; first open, last close, max, min, sums."""
    buckets: dict[tuple, list[dict]] = {}
    for row in rows:
        midnight = dt.datetime.combine(row["date"], dt.time(), tzinfo=dt.UTC)
        index = int((row["minute"] - midnight).total_seconds() // 60) // minutes
        start = midnight + dt.timedelta(minutes=index * minutes)
        buckets.setdefault((row["exchange"], row["symbol"], row["date"], start), []).append(row)
    bars = []
    for (exchange, symbol, date, start), group in sorted(buckets.items()):
        group.sort(key=lambda r: r["minute"])
        volume = math.fsum(r["volume"] for r in group)
        quote_volume = math.fsum(r["quote_volume"] for r in group)
        bars.append(
            {
                "exchange": exchange,
                "symbol": symbol,
                "date": date,
                "minute": start,
                "open": group[0]["open"],
                "high": max(r["high"] for r in group),
                "low": min(r["low"] for r in group),
                "close": group[-1]["close"],
                "volume": volume,
                "quote_volume": quote_volume,
                "vwap": quote_volume / volume,
                "trades": sum(r["trades"] for r in group),
                "buy_volume": math.fsum(r["buy_volume"] for r in group),
                "sell_volume": math.fsum(r["sell_volume"] for r in group),
            }
        )
    return bars


def assert_same_bars(got: list[dict], expected: list[dict]) -> None:
    assert len(got) == len(expected)
    exact = ("exchange", "symbol", "date", "minute", "open", "high", "low", "close", "trades")
    for g, e in zip(got, expected, strict=True):
        assert {k: g[k] for k in exact} == {k: e[k] for k in exact}
        for column in ("volume", "quote_volume", "vwap", "buy_volume", "sell_volume"):
            assert g[column] == pytest.approx(e[column], rel=1e-12), (column, g, e)


@pytest.mark.parametrize("freq", ["5m", "7m", "15min", "90m", "4h", dt.timedelta(minutes=30)])
def test_other_frequencies_are_resampled_from_one_minute_bars_exactly(sim_lake, freq):
    got = ml.bars(SYMBOLS, "2024-03-01", "2024-03-02", freq=freq, lake=sim_lake).collect()
    assert got.columns == list(BAR_COLUMNS)
    assert got.schema == pl.scan_delta(sim_lake.table_uri("bars_1m")).collect_schema()
    expected = resampled_by_hand(
        one_minute_rows(sim_lake, SYMBOLS, list(DAYS[:2])), bar_minutes(freq)
    )
    assert_same_bars(got.to_dicts(), expected)


def test_bars_start_at_midnight_and_a_length_that_does_not_divide_the_day_ends_short(sim_lake):
    got = ml.bars("BTCUSDT", "2024-03-01", "2024-03-02", freq="7m", lake=sim_lake).collect()
    for day, bars in got.group_by("date"):
        starts = bars["minute"].sort()
        midnight = dt.datetime.combine(day[0], dt.time(), tzinfo=dt.UTC)
        assert starts[0] == midnight
        assert starts[-1] == midnight + dt.timedelta(minutes=7 * (1439 // 7))  # 23:55


@pytest.mark.parametrize(("freq", "table"), [("1m", "bars_1m"), ("1h", "bars_1h"),
                                             ("60m", "bars_1h"), ("1d", "bars_1d")])  # fmt: skip
def test_one_minute_hour_and_day_bars_are_read_from_their_tables(sim_lake, freq, table):
    got = ml.bars(SYMBOLS, "2024-03-01", "2024-03-03", freq=freq, lake=sim_lake).collect()
    expected = (
        pl.scan_delta(sim_lake.table_uri(table)).filter(pl.col("symbol").is_in(SYMBOLS)).collect()
    )
    key = ["symbol", "minute"]
    assert got.sort(key).equals(expected.sort(key))


def test_resampling_to_an_hour_agrees_with_the_hourly_table(sim_lake):
    one_minute = ml.bars("ETHUSDT", "2024-03-01", lake=sim_lake)
    resampled = ml.resample_bars(one_minute, 60).collect()
    hourly = ml.bars("ETHUSDT", "2024-03-01", freq="1h", lake=sim_lake).collect().sort("minute")
    exact = ["minute", "open", "high", "low", "close", "trades"]
    assert resampled.select(exact).equals(hourly.select(exact))
    for column in ("volume", "quote_volume", "vwap"):
        assert resampled[column].to_list() == pytest.approx(hourly[column].to_list(), rel=1e-9)


@pytest.mark.parametrize(
    ("freq", "named"),
    [
        ("90s", "'90s' is not a whole number of minutes"),
        ("2d", "at most one day"),
        ("0m", "longer than zero"),
        ("5 minutes", "'5 minutes' is not understood"),
        (5, "5 is not understood"),
    ],
)
def test_a_frequency_bars_cannot_have_is_refused_with_the_value_named(sim_lake, freq, named):
    with pytest.raises(ml.LakeError, match=named):
        ml.bars("BTCUSDT", "2024-03-01", freq=freq, lake=sim_lake)


@pytest.mark.parametrize("freq", ["1m", "5m"])
def test_bars_come_in_the_order_of_the_symbols_given_each_in_time_order(sim_lake, freq):
    got = ml.bars(["ETHUSDT", "BTCUSDT"], "2024-03-01", "2024-03-02", freq=freq, lake=sim_lake)
    got = got.collect()
    assert got["symbol"].unique(maintain_order=True).to_list() == ["ETHUSDT", "BTCUSDT"]
    for _, bars in got.group_by("symbol"):
        assert bars["minute"].is_sorted()
