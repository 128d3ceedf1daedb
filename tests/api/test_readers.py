"""The readers: what a user asks for (symbols x days) is exactly what comes back."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from api.lakes import DAYS, KEYS, trades_frame

import marketlake as ml
from marketlake import schemas
from marketlake.lake import Lake


def stored(lake: Lake, table: str, symbols: list[str], days: list[dt.date]) -> pl.DataFrame:
    """The same rows read the slow, obvious way: the whole table through Delta, filtered."""
    return (
        pl.scan_delta(lake.table_uri(table))
        .filter(pl.col("symbol").is_in(symbols), pl.col("date").is_in(days))
        .collect()
    )


def same_rows(a: pl.DataFrame, b: pl.DataFrame, *by: str) -> bool:
    return a.columns == b.columns and a.sort(*by).equals(b.sort(*by))


def test_trades_are_exactly_the_partitions_asked_for_with_the_tables_columns(sim_lake):
    got = ml.trades("BTCUSDT", "2024-03-01", "2024-03-02", lake=sim_lake).collect()
    assert got.schema == schemas.TRADES
    assert same_rows(got, stored(sim_lake, "trades", ["BTCUSDT"], list(DAYS[:2])), "trade_id")
    assert got["date"].unique().sort().to_list() == list(DAYS[:2])


def test_the_end_day_defaults_to_the_start_day_and_is_inclusive(sim_lake):
    one = ml.trades("BTCUSDT", dt.date(2024, 3, 2), lake=sim_lake).collect()
    assert one["date"].unique().to_list() == [dt.date(2024, 3, 2)]
    three = ml.trades("BTCUSDT", "2024-03-01", "2024-03-03", lake=sim_lake).collect()
    assert three["date"].n_unique() == 3


def test_several_symbols_come_back_in_the_order_given_and_lowercase_is_accepted(sim_lake):
    got = ml.quotes(["ethusdt", "BTCUSDT"], "2024-03-01", lake=sim_lake).collect()
    assert got.schema == schemas.QUOTES
    assert got["symbol"].unique(maintain_order=True).to_list() == ["ETHUSDT", "BTCUSDT"]
    expected = stored(sim_lake, "quotes", ["ETHUSDT", "BTCUSDT"], [DAYS[0]])
    assert same_rows(got, expected, "symbol", "ts", "update_id")


def test_a_coinbase_product_is_read_on_exchange_coinbase_or_qualified(sim_lake):
    got = ml.trades("BTC-USD", "2024-03-01", exchange="coinbase", lake=sim_lake).collect()
    assert got.height > 0 and got["exchange"].unique().to_list() == ["coinbase"]
    same = ml.trades("coinbase:btc-usd", "2024-03-01", lake=sim_lake).collect()
    assert same.equals(got)
    # the venue is never guessed from the dash: Binance (the default) spells no BTC-USD
    with pytest.raises(ml.LakeError, match=r"invalid Binance symbol 'BTC-USD'"):
        ml.trades("BTC-USD", "2024-03-01", lake=sim_lake)


def test_asking_for_a_symbol_on_an_exchange_that_does_not_list_it_names_both(sim_lake):
    with pytest.raises(ml.LakeError, match=r"'BTC-USD' on okx.*it is on coinbase"):
        ml.trades("BTC-USD", "2024-03-01", exchange="okx", lake=sim_lake)
    with pytest.raises(ml.LakeError, match=r"no exchange 'kraken'.*binance, coinbase"):
        ml.trades("BTCUSDT", "2024-03-01", exchange="kraken", lake=sim_lake)


def test_a_symbol_two_venues_spell_alike_is_read_from_the_venue_asked_for(tmp_path):
    lake = Lake(str(tmp_path), {})
    for exchange in ("coinbase", "okx"):
        frame = trades_frame(exchange, "BTC-USD", DAYS[0])
        lake.replace_partition(
            "trades", frame, {"exchange": exchange, "symbol": "BTC-USD", "date": DAYS[0]}, KEYS
        )
    got = ml.trades("BTC-USD", "2024-03-01", exchange="okx", lake=lake).collect()
    assert got["exchange"].unique().to_list() == ["okx"]
    both = ml.trades(["okx:BTC-USD", "coinbase:BTC-USD"], "2024-03-01", lake=lake).collect()
    assert both["exchange"].unique(maintain_order=True).to_list() == ["okx", "coinbase"]


def test_a_deribit_or_okx_symbol_keeps_its_venues_spelling(tmp_path):
    lake = Lake(str(tmp_path), {})
    for exchange, symbol in (("deribit", "XRP_USDC-30JUN23-0d625-C"), ("okx", "BTC-USDT-SWAP")):
        frame = trades_frame(exchange, symbol, DAYS[0])
        lake.replace_partition(
            "trades", frame, {"exchange": exchange, "symbol": symbol, "date": DAYS[0]}, KEYS
        )
    option = ml.trades("xrp_usdc-30jun23-0d625-c", DAYS[0], exchange="deribit", lake=lake)
    assert option.collect()["symbol"].unique().to_list() == ["XRP_USDC-30JUN23-0d625-C"]
    swap = ml.trades("okx:btc-usdt-swap", DAYS[0], lake=lake).collect()
    assert swap["symbol"].unique().to_list() == ["BTC-USDT-SWAP"]


def test_an_unknown_symbol_is_named_with_what_the_table_holds(sim_lake):
    with pytest.raises(ml.LakeError) as error:
        ml.bars(["BTCUSDT", "XRPUSDT"], "2024-03-01", lake=sim_lake)
    message = str(error.value)
    assert "'XRPUSDT'" in message and "bars_1m" in message
    assert "BTCUSDT (binance)" in message and "BTC-USD (coinbase)" in message


@pytest.mark.parametrize(
    ("start", "end", "named"),
    [
        ("2024-13-01", None, "start '2024-13-01' is not a date"),
        ("2024-03-01", "March 3rd", "end 'March 3rd' is not a date"),
        ("2024-03-03", "2024-03-01", "end 2024-03-01 is before start 2024-03-03"),
        (dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC), None, "filter `ts` for a time window"),
        (20240301, None, "start must be a date"),
    ],
)
def test_bad_dates_are_refused_with_the_value_named(sim_lake, start, end, named):
    with pytest.raises(ml.LakeError, match=named):
        ml.trades("BTCUSDT", start, end, lake=sim_lake)


def test_a_missing_table_is_named_with_the_lake(tmp_path):
    lake = Lake(str(tmp_path), {})
    with pytest.raises(ml.LakeError, match=r"no table 'spread_1m' in the lake at .*"):
        ml.spread("BTCUSDT", "2024-03-01", lake=lake)


def test_a_day_without_data_reads_as_no_rows_with_the_tables_columns(sim_lake):
    got = ml.trades("coinbase:BTC-USD", "2024-03-02", "2024-03-05", lake=sim_lake).collect()
    assert got.is_empty() and got.schema == schemas.TRADES
    some = ml.trades("coinbase:BTC-USD", "2024-02-28", "2024-03-05", lake=sim_lake).collect()
    assert some["date"].unique().to_list() == [DAYS[0]]


@pytest.mark.parametrize(
    ("reader", "table"),
    [
        (ml.spread, "spread_1m"),
        (ml.summary, "daily_summary"),
        (ml.depth, "ticks_depth"),
    ],
)
def test_each_reader_returns_its_table_with_the_tables_own_columns(sim_lake, reader, table):
    got = reader(["BTCUSDT", "ETHUSDT"], "2024-03-01", "2024-03-03", lake=sim_lake).collect()
    expected = stored(sim_lake, table, ["BTCUSDT", "ETHUSDT"], list(DAYS))
    assert got.schema == expected.schema
    assert got.height == expected.height > 0
    order = [c for c in ("symbol", "date", "minute", "ts") if c in got.columns]
    assert same_rows(got, expected, *order)


def test_read_takes_any_market_table_by_name(sim_lake):
    got = ml.read("bars_1h", "ETHUSDT", "2024-03-03", lake=sim_lake).collect()
    assert same_rows(got, stored(sim_lake, "bars_1h", ["ETHUSDT"], [DAYS[2]]), "minute")
    with pytest.raises(ml.LakeError, match="invalid table name"):
        ml.read("../trades", "ETHUSDT", "2024-03-03", lake=sim_lake)


def test_a_new_commit_is_seen_by_the_next_read(tmp_path):
    lake = build_lake_of_one_day(tmp_path)
    before = ml.trades("BTCUSDT", DAYS[0], lake=lake).collect().height
    partition = {"exchange": "binance", "symbol": "BTCUSDT", "date": DAYS[0]}
    lake.replace_partition("trades", trades_frame("binance", "BTCUSDT", DAYS[0]).head(7),
                           partition, KEYS)  # fmt: skip
    assert before > 7
    assert ml.trades("BTCUSDT", DAYS[0], lake=lake).collect().height == 7
    nxt = {**partition, "date": DAYS[1]}
    lake.replace_partition("trades", trades_frame("binance", "BTCUSDT", DAYS[1]), nxt, KEYS)
    assert ml.trades("BTCUSDT", DAYS[0], DAYS[1], lake=lake).collect()["date"].n_unique() == 2


def build_lake_of_one_day(root) -> Lake:
    lake = Lake(str(root), {})
    partition = {"exchange": "binance", "symbol": "BTCUSDT", "date": DAYS[0]}
    lake.replace_partition("trades", trades_frame("binance", "BTCUSDT", DAYS[0]), partition, KEYS)
    return lake


def test_lake_without_a_root_is_marketlake_lake_or_dot_lake(monkeypatch, tmp_path):
    monkeypatch.setenv("MARKETLAKE_LAKE", str(tmp_path / "elsewhere"))
    assert ml.Lake().uri == str(tmp_path / "elsewhere")
    monkeypatch.delenv("MARKETLAKE_LAKE")
    monkeypatch.chdir(tmp_path)
    assert ml.Lake().uri == str(tmp_path / "lake")


def test_an_s3_lake_takes_its_endpoint_and_keys_from_the_environment(monkeypatch):
    monkeypatch.setenv("MARKETLAKE_S3_ENDPOINT", "http://127.0.0.1:8333")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    lake = ml.Lake("s3://bucket/prefix")
    assert lake.uri == "s3://bucket/prefix"
    assert lake.storage_options["AWS_ENDPOINT_URL"] == "http://127.0.0.1:8333"
    assert lake.storage_options["AWS_ALLOW_HTTP"] == "true"
    assert lake.storage_options["AWS_ACCESS_KEY_ID"] == "key"
    assert ml.Lake("s3://bucket/prefix", {}).storage_options == {}  # given: taken as given
