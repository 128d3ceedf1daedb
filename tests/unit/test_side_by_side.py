"""The side-by-side transform on hand-made frames: the numbers a user would check by hand."""

import datetime as dt

import polars as pl
import pytest

from marketlake.side_by_side import check_venue_prices, instruments_frame, venue_prices

DAY = dt.date(2024, 3, 1)


def at(clock: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{DAY}T{clock}+00:00")


def trades(*rows: tuple) -> pl.DataFrame:
    """(exchange, symbol, hh:mm:ss, price, qty) rows; trade ids in row order per symbol."""
    return pl.DataFrame(
        [(e, s, at(t), i, p, q) for i, (e, s, t, p, q) in enumerate(rows)],
        schema=["exchange", "symbol", "ts", "trade_id", "price", "qty"],
        orient="row",
    )


def quotes(*rows: tuple) -> pl.DataFrame:
    """(exchange, symbol, hh:mm:ss, bid, ask) rows."""
    return pl.DataFrame(
        [(e, s, at(t), b, a) for e, s, t, b, a in rows],
        schema={"exchange": pl.String, "symbol": pl.String, "ts": pl.Datetime("us", "UTC"),
                "bid_price": pl.Float64, "ask_price": pl.Float64},
        orient="row",
    )  # fmt: skip


NO_QUOTES = quotes()


def side_by_side(traded: pl.DataFrame, quoted: pl.DataFrame = NO_QUOTES) -> pl.DataFrame:
    pairs = set(traded.select("exchange", "symbol").iter_rows())
    pairs |= set(quoted.select("exchange", "symbol").iter_rows())
    instruments, _ = instruments_frame(pairs)
    return venue_prices(traded, quoted, instruments, DAY)


def test_two_venues_at_100_and_101_are_99_5_bps_apart_relative_to_their_midpoint():
    rows = side_by_side(
        trades(("binance", "BTCUSDT", "00:00:01", 100.0, 1.0),
               ("coinbase", "BTC-USD", "00:00:02", 101.0, 1.0))
    )  # fmt: skip
    assert rows["instrument"].unique().to_list() == ["BTC-USD spot"]
    assert rows["gap_bps"].to_list() == [pytest.approx(10_000 / 100.5)] * 2  # 99.5025 bps
    assert rows["gap_low_venue"].unique().to_list() == ["binance:BTCUSDT"]
    assert rows["gap_high_venue"].unique().to_list() == ["coinbase:BTC-USD"]


def test_the_largest_gap_is_between_the_cheapest_and_the_dearest_of_three_venues():
    rows = side_by_side(
        trades(("binance", "BTCUSDT", "00:05:00", 100.2, 1.0),
               ("coinbase", "BTC-USD", "00:05:10", 100.0, 1.0),
               ("okx", "BTC-USDT", "00:05:20", 100.6, 1.0))
    )  # fmt: skip
    assert rows.height == 3
    assert rows["gap_bps"].unique().to_list() == [pytest.approx(0.6 / 100.3 * 10_000)]
    assert rows["gap_low_venue"].unique().to_list() == ["coinbase:BTC-USD"]
    assert rows["gap_high_venue"].unique().to_list() == ["okx:BTC-USDT"]


def test_vwap_weighs_deribits_usd_amounts_as_bitcoin():
    # 10,000 USD at 100 is 100 BTC; 10,100 USD at 101 is 100 BTC: the VWAP is 100.5
    rows = side_by_side(
        trades(("deribit", "BTC-PERPETUAL", "00:00:01", 100.0, 10_000.0),
               ("deribit", "BTC-PERPETUAL", "00:00:02", 101.0, 10_100.0))
    )  # fmt: skip
    (row,) = rows.to_dicts()
    assert row["vwap"] == pytest.approx(100.5)
    assert row["base_volume"] == pytest.approx(200.0)
    assert (row["instrument"], row["trades"], row["last_price"]) == ("BTC-USD perpetual", 2, 101.0)
    assert row["gap_bps"] is None  # alone in its instrument: nothing to compare with


def test_last_price_is_the_latest_trade_and_mid_the_latest_quote_of_the_minute():
    rows = side_by_side(
        trades(("binance", "BTCUSDT", "00:00:50", 102.0, 1.0),
               ("binance", "BTCUSDT", "00:00:10", 100.0, 3.0)),
        quotes(("binance", "BTCUSDT", "00:00:40", 101.0, 103.0),
               ("binance", "BTCUSDT", "00:00:20", 99.0, 100.0)),
    )  # fmt: skip
    (row,) = rows.to_dicts()
    assert (row["last_price"], row["mid"], row["vwap"]) == (102.0, 102.0, 100.5)


def test_a_venue_that_only_quoted_has_its_mid_but_stays_out_of_the_gap():
    rows = side_by_side(
        trades(("binance", "BTCUSDT", "00:01:01", 100.0, 1.0),
               ("coinbase", "BTC-USD", "00:01:02", 100.1, 1.0)),
        quotes(("okx", "BTC-USDT", "00:01:30", 90.0, 90.2)),
    )  # fmt: skip
    okx = rows.filter(pl.col("exchange") == "okx").to_dicts()[0]
    assert (okx["trades"], okx["vwap"], okx["mid"]) == (0, None, 90.1)
    assert rows["gap_bps"].unique().to_list() == [pytest.approx(0.1 / 100.05 * 10_000)]


def test_minutes_are_compared_separately_and_spot_never_meets_a_perpetual():
    rows = side_by_side(
        trades(("binance", "BTCUSDT", "00:00:59", 100.0, 1.0),
               ("coinbase", "BTC-USD", "00:01:00", 101.0, 1.0),
               ("deribit", "BTC-PERPETUAL", "00:00:30", 105.0, 100.0))
    )  # fmt: skip
    assert rows.select("instrument", "minute", "exchange").rows() == [
        ("BTC-USD perpetual", at("00:00:00"), "deribit"),
        ("BTC-USD spot", at("00:00:00"), "binance"),
        ("BTC-USD spot", at("00:01:00"), "coinbase"),
    ]
    assert rows["gap_bps"].null_count() == 3


def test_equal_prices_are_a_zero_gap_between_two_named_venues():
    rows = side_by_side(
        trades(("okx", "BTC-USDT", "00:00:01", 100.0, 1.0),
               ("binance", "BTCUSDT", "00:00:02", 100.0, 1.0))
    )  # fmt: skip
    assert rows["gap_bps"].to_list() == [0.0, 0.0]
    assert {rows["gap_low_venue"][0], rows["gap_high_venue"][0]} == {
        "binance:BTCUSDT", "okx:BTC-USDT",
    }  # fmt: skip
    assert all(o.passed for o in check_venue_prices(rows, DAY))


def test_options_are_left_out_and_reported():
    instruments, skipped = instruments_frame(
        [("deribit", "BTC-27DEC24-100000-C"), ("binance", "BTCUSDT")]
    )
    assert instruments["symbol"].to_list() == ["BTCUSDT"]
    assert skipped == {"deribit:BTC-27DEC24-100000-C": "not a spot, perpetual or future instrument"}


def test_the_checks_catch_a_duplicated_row_and_a_minute_outside_the_day():
    rows = side_by_side(trades(("binance", "BTCUSDT", "00:00:01", 100.0, 1.0)))
    bad = pl.concat([rows, rows])
    failed = {o.name: o.failing_rows for o in check_venue_prices(bad, DAY) if not o.passed}
    assert failed == {"one_row_per_instrument_minute_venue": 2}
    failed = {o.name for o in check_venue_prices(rows, DAY + dt.timedelta(days=1)) if not o.passed}
    assert failed == {"minutes_in_partition_day"}
