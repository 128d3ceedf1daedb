"""Binance wire formats against real captures (tests/data/real/, see its PROVENANCE.md).

Every expected value here is copied from the sample files by hand or computed by an
independent parse (the csv/json modules and Python's float), never by the code under test.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
from support.samples import BINANCE_REST, BINANCE_VISION, TRADES_CSV_2024, TRADES_CSV_2025

from marketlake.exchanges.binance.parsing import (
    AGG_TRADES,
    detect_time_unit,
    parse_agg_trades,
    parse_checksum,
    parse_exchange_info,
    parse_rest_trades,
    parse_trades_csv,
    parse_trades_csv_with_unit,
)
from marketlake.exchanges.errors import ArchiveFormatError, ExchangeError, ResponseFormatError
from marketlake.schemas import RAW_TRADES

UTC = dt.UTC


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def reference_rows(path: Path) -> list[tuple]:
    """The CSV parsed with the csv module, time converted by hand from its digit count."""
    rows = []
    with path.open(newline="") as handle:
        for trade_id, price, qty, quote, time, maker, _best in csv.reader(handle):
            micros = int(time) * (1000 if len(time) == 13 else 1)
            ts = dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(microseconds=micros)
            rows.append(
                (int(trade_id), float(price), float(qty), float(quote), ts, maker == "True")
            )
    return rows


# --- archive CSV: the real files ----------------------------------------------------------------


def test_ms_archive_csv_parses_to_exact_values_and_timestamps():
    trades, unit = parse_trades_csv_with_unit(TRADES_CSV_2024)
    assert unit == "ms"
    assert trades.schema == RAW_TRADES
    assert trades.height == 217
    assert trades.row(0) == (
        4356587539,
        92792.05,
        0.00129,
        119.7017445,
        at(2024, 12, 31, 0, 0, 0, 213000),
        False,
    )
    assert trades.row(-1) == (
        4356587755,
        92789.46,
        0.00006,
        5.5673676,
        at(2024, 12, 31, 0, 0, 10, 548000),
        True,
    )


def test_us_archive_csv_keeps_microseconds_exactly():
    trades, unit = parse_trades_csv_with_unit(TRADES_CSV_2025)
    assert unit == "us"
    assert trades.schema == RAW_TRADES
    assert trades.height == 210
    assert trades.row(0) == (
        4359935386,
        93576.0,
        0.00136,
        127.26336,
        at(2025, 1, 1, 0, 0, 0, 10866),
        True,
    )
    assert trades.row(-1) == (
        4359935595,
        93562.01,
        0.00006,
        5.6137206,
        at(2025, 1, 1, 0, 0, 5, 493431),
        True,
    )


@pytest.mark.parametrize("path", [TRADES_CSV_2024, TRADES_CSV_2025], ids=["ms", "us"])
def test_every_row_equals_an_independent_parse_and_ids_are_contiguous(path: Path):
    trades = parse_trades_csv(path)
    assert trades.rows() == reference_rows(path)
    ids = trades["trade_id"]
    assert (ids.diff().drop_nulls() == 1).all()
    assert trades["ts"].is_sorted()


def test_raw_ts_is_the_integer_epoch_times_1000_for_ms_files():
    trades = parse_trades_csv(TRADES_CSV_2024)
    assert trades["ts"].dt.epoch("us")[0] == 1735603200213 * 1000
    trades = parse_trades_csv(TRADES_CSV_2025)
    assert trades["ts"].dt.epoch("us")[0] == 1735689600010866


def test_bytes_str_and_path_sources_parse_identically():
    from_path = parse_trades_csv(TRADES_CSV_2025)
    assert parse_trades_csv(str(TRADES_CSV_2025)).equals(from_path)
    assert parse_trades_csv(TRADES_CSV_2025.read_bytes()).equals(from_path)


def test_an_empty_archive_csv_is_an_empty_frame_of_the_schema(tmp_path: Path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    frame, unit = parse_trades_csv_with_unit(empty)
    assert frame.schema == RAW_TRADES and frame.height == 0 and unit is None


def test_a_last_line_without_newline_is_a_full_row():
    data = TRADES_CSV_2024.read_bytes().rstrip(b"\n")
    assert parse_trades_csv(data).height == 217


# --- archive CSV: malformed files -------------------------------------------------------------

GOOD = TRADES_CSV_2024.read_bytes()
GOOD_LINES = GOOD.splitlines(keepends=True)


def with_line(number: int, text: bytes) -> bytes:
    lines = list(GOOD_LINES)
    lines[number - 1] = text
    return b"".join(lines)


@pytest.mark.parametrize(
    ("data", "where"),
    [
        pytest.param(
            with_line(14, GOOD_LINES[13].rstrip(b"\n") + b",extra\n"), "line 14", id="extra-column"
        ),
        pytest.param(
            with_line(20, b"4356587558,92792.05000000,0.00129000\n"),
            "line 20",
            id="missing-columns",
        ),
        pytest.param(
            with_line(30, GOOD_LINES[29].replace(b"92792.", b"9x792.", 1)),
            "line 30",
            id="non-numeric",
        ),
        pytest.param(
            with_line(7, GOOD_LINES[6].replace(b"False", b"maybe", 1)), "line 7", id="bad-boolean"
        ),
        pytest.param(GOOD[: len(GOOD) - 40], "last line 217", id="truncated-last-line"),
        pytest.param(with_line(5, b"\n"), "line 5", id="blank-line"),
        pytest.param(
            b"id,price,qty,quote_qty,time,is_buyer_maker,is_best_match\n" + GOOD,
            "line 1",
            id="header",
        ),
    ],
)
def test_a_malformed_csv_raises_a_format_error_naming_file_and_line(data: bytes, where: str):
    with pytest.raises(ArchiveFormatError) as caught:
        parse_trades_csv(data, name="BTCUSDT-trades-2024-12-31.csv")
    message = str(caught.value)
    assert "BTCUSDT-trades-2024-12-31.csv" in message
    assert where in message
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, ExchangeError)


def test_a_malformed_file_on_disk_is_named_by_its_path(tmp_path: Path):
    path = tmp_path / "broken.csv"
    path.write_bytes(with_line(3, b"1,2,3\n"))
    with pytest.raises(ArchiveFormatError, match=r"broken\.csv: line 3"):
        parse_trades_csv(path)


def test_a_file_mixing_ms_and_us_is_refused_with_the_first_odd_line():
    mixed = GOOD + GOOD_LINES[-1].replace(b"1735603210548", b"1735603210548000")
    with pytest.raises(ArchiveFormatError, match=r"mixes units.*line 218 is us"):
        parse_trades_csv(mixed, name="mixed.csv")


def test_times_that_are_neither_ms_nor_us_are_refused():
    seconds = with_line(1, GOOD_LINES[0].replace(b"1735603200213", b"1735603200"))
    with pytest.raises(ArchiveFormatError, match=r"line 1: time 1735603200 is neither"):
        parse_trades_csv(seconds, name="s.csv")


def test_unit_detection_looks_at_magnitude_not_at_the_date():
    assert detect_time_unit(pl.Series([1735603200213, 1735689599999])) == "ms"
    assert detect_time_unit(pl.Series([1735689600010866])) == "us"
    # A µs file from before 2025 (never published, but the parser must not assume).
    assert detect_time_unit(pl.Series([1577836800000000])) == "us"
    assert detect_time_unit(pl.Series([], dtype=pl.Int64)) is None


# --- REST JSON ---------------------------------------------------------------------------------


def reference_rest_rows(path: Path) -> list[tuple]:
    rows = []
    for t in json.loads(path.read_text()):
        ts = dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(milliseconds=t["time"])
        rows.append(
            (
                t["id"],
                float(t["price"]),
                float(t["qty"]),
                float(t["quoteQty"]),
                ts,
                t["isBuyerMaker"],
            )
        )
    return rows


def test_historical_trades_json_parses_to_exact_values():
    path = BINANCE_REST / "nautilus_http_spot_market_historical_trades.json"
    trades = parse_rest_trades(path.read_bytes())
    assert trades.schema == RAW_TRADES
    assert trades.height == 10
    assert trades.row(0) == (
        1111471896,
        60814.78,
        0.00034,
        20.6770252,
        at(2021, 10, 22, 22, 53, 39, 887000),
        True,
    )
    assert trades.row(-1) == (
        1111471905,
        60814.79,
        0.06902,
        4197.4368058,
        at(2021, 10, 22, 22, 53, 40, 769000),
        False,
    )
    assert trades.rows() == reference_rest_rows(path)


def test_recent_trades_json_parses_to_exact_values():
    path = BINANCE_REST / "nautilus_http_spot_market_trades.json"
    trades = parse_rest_trades(path.read_bytes())
    assert trades.row(0) == (
        1111468873,
        60650.0,
        0.02924,
        1773.406,
        at(2021, 10, 22, 22, 49, 9, 263000),
        True,
    )
    assert trades.rows() == reference_rest_rows(path)
    assert (trades["trade_id"].diff().drop_nulls() == 1).all()


def test_agg_trades_json_parses_to_exact_values():
    trades = parse_agg_trades(
        (BINANCE_REST / "nautilus_http_spot_market_agg_trades.json").read_bytes()
    )
    assert trades.schema == AGG_TRADES
    assert trades.height == 10
    assert trades.row(0) == (
        966492862,
        60759.6,
        0.00841,
        1111480471,
        1111480471,
        at(2021, 10, 22, 23, 8, 16, 633000),
        False,
    )
    assert trades.row(-1) == (
        966492871,
        60759.6,
        0.001,
        1111480480,
        1111480480,
        at(2021, 10, 22, 23, 8, 18, 216000),
        False,
    )
    assert trades["is_buyer_maker"].to_list()[2] is True


def test_an_empty_trades_list_is_an_empty_frame():
    assert parse_rest_trades(b"[]").schema == RAW_TRADES
    assert parse_agg_trades(b"[]").height == 0


@pytest.mark.parametrize(
    "body",
    [
        b'{"code":-1121,"msg":"Invalid symbol."}',
        b"<html>502 Bad Gateway</html>",
        b'[{"id":1,"price":"1.0","qty":"2.0","time":5,"isBuyerMaker":true}]',
        b'[{"id":1,"price":"abc","qty":"2.0","quoteQty":"2","time":5,"isBuyerMaker":true}]',
    ],
    ids=["error-object", "not-json", "missing-field", "non-numeric-price"],
)
def test_a_trades_body_that_is_not_a_trades_list_raises_a_format_error(body: bytes):
    with pytest.raises(ResponseFormatError):
        parse_rest_trades(body)


def test_exchange_info_maps_each_symbol_to_its_entry():
    info = parse_exchange_info(
        (BINANCE_REST / "nautilus_http_spot_market_exchange_info.json").read_bytes()
    )
    assert set(info) == {"BTCUSDT", "ETHUSDT"}
    btc = info["BTCUSDT"]
    assert (btc["status"], btc["baseAsset"], btc["quoteAsset"]) == ("TRADING", "BTC", "USDT")
    assert info["ETHUSDT"]["baseAsset"] == "ETH"
    tick = next(f for f in btc["filters"] if f["filterType"] == "PRICE_FILTER")["tickSize"]
    assert tick == "0.01000000"


def test_exchange_info_reads_the_modern_documented_shape():
    body = (
        BINANCE_REST / "DOCEXAMPLE_nautilus_crates_spot_exchange_info_response.json"
    ).read_bytes()
    info = parse_exchange_info(body)
    assert list(info) == ["ETHBTC"]
    assert info["ETHBTC"]["quoteAsset"] == "BTC"
    assert info["ETHBTC"]["permissionSets"] == [["SPOT", "MARGIN"]]


def test_exchange_info_without_symbols_is_refused():
    with pytest.raises(ResponseFormatError, match="symbols"):
        parse_exchange_info(b'{"code":-1000,"msg":"x"}')


# --- CHECKSUM sidecars -------------------------------------------------------------------------


def test_checksum_sidecars_without_trailing_newline_parse():
    assert parse_checksum(
        (BINANCE_VISION / "BTCUSDT-trades-2020-01-01.zip.CHECKSUM").read_text()
    ) == (
        "e710f3819a54c46a78188f67043b4de7d8914cfda8abb5f0075eb4a4d90bd042",
        "BTCUSDT-trades-2020-01-01.zip",
    )
    assert parse_checksum(
        (BINANCE_VISION / "BTCUSDT-aggTrades-2024-04-20.zip.CHECKSUM").read_bytes()
    ) == (
        "08bfbf749848b1e0cf33287817b795bfae2a218f85aa4262821e3eb28e861232",
        "BTCUSDT-aggTrades-2024-04-20.zip",
    )


def test_checksum_tolerates_a_newline_and_the_binary_marker():
    digest = "AB" * 32
    assert parse_checksum(f"{digest} *X.zip\n") == ("ab" * 32, "X.zip")


@pytest.mark.parametrize("text", ["", "abc  X.zip", "e710f381" * 8, "<Error>NoSuchKey</Error>"])
def test_a_malformed_checksum_is_refused(text: str):
    with pytest.raises(ResponseFormatError):
        parse_checksum(text)
