"""Property tests of every exchange parser: any input parses to a valid record or is
refused with the parser's own error; a valid message round-trips exactly.

Websocket parsers must never raise (a frame they can't read is a `Reject`, so the stream
goes on); the archive CSV parser raises only `ArchiveFormatError`, the REST parser only
`ResponseFormatError`. Generated valid messages use the exchanges' own wire forms: decimal
strings with 8 places, ms or µs epoch times, RFC 3339 with up to 9 fraction digits.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import orjson
import polars as pl
from hypothesis import given
from hypothesis import strategies as st
from support.properties import (
    PROPERTY,
    RECEIVED,
    assert_valid,
    json_values,
    ms_times,
    positive_decimals,
    us_times,
    wire,
)

from marketlake.exchanges.binance.archive import LineCutter
from marketlake.exchanges.binance.parsing import (
    parse_rest_trades,
    parse_trades_csv_chunks,
    parse_trades_csv_with_unit,
)
from marketlake.exchanges.binance.websocket import BinanceFeed
from marketlake.exchanges.coinbase.websocket import CoinbaseFeed
from marketlake.exchanges.errors import ArchiveFormatError, ResponseFormatError
from marketlake.exchanges.feed import Depth, Quote, Trade
from marketlake.schemas import RAW_TRADES

# --- Binance websocket ------------------------------------------------------------------------

BINANCE = {"BTCUSDT"}
binance_streams = st.sampled_from(
    ["btcusdt@trade", "btcusdt@bookTicker", "btcusdt@depth20@100ms", "ethusdt@trade"]
) | st.text(max_size=30)


@PROPERTY
@given(st.binary(max_size=300))
def test_binance_any_bytes_parse_or_are_refused_never_raise(raw: bytes):
    for record in BinanceFeed().parser(["BTCUSDT"]).parse(raw, RECEIVED):
        assert_valid(record, BINANCE)


@PROPERTY
@given(
    binance_streams,
    st.dictionaries(
        st.sampled_from([*"eEstpqTmMuBbAa", "lastUpdateId", "bids", "asks"]),
        json_values
        | st.builds(wire, positive_decimals)
        | st.lists(st.lists(st.builds(wire, positive_decimals) | json_values, max_size=3)),
        max_size=12,
    ),
)
def test_binance_any_envelope_parses_to_a_valid_record_or_is_refused(stream: str, data: dict):
    raw = orjson.dumps({"stream": stream, "data": data})
    for record in BinanceFeed().parser(["BTCUSDT"]).parse(raw, RECEIVED):
        assert_valid(record, BINANCE)


@PROPERTY
@given(
    st.integers(min_value=0, max_value=2**63 - 1),
    positive_decimals,
    positive_decimals,
    ms_times | us_times,
    st.booleans(),
)
def test_binance_trades_round_trip_exactly(
    trade_id: int, price: Decimal, qty: Decimal, time: int, maker: bool
):
    data = {"e": "trade", "E": time, "s": "BTCUSDT", "t": trade_id, "p": wire(price)}
    data |= {"q": wire(qty), "T": time, "m": maker, "M": True}
    raw = orjson.dumps({"stream": "btcusdt@trade", "data": data})
    ts_us = time if time >= 10**15 else time * 1000
    expected = Trade("BTCUSDT", trade_id, float(price), float(qty), ts_us, maker, RECEIVED)
    assert BinanceFeed().parser(["BTCUSDT"]).parse(raw, RECEIVED) == [expected]


@PROPERTY
@given(st.integers(min_value=0, max_value=2**63 - 1), st.lists(positive_decimals, min_size=4))
def test_binance_book_tickers_round_trip_exactly(update_id: int, values: list[Decimal]):
    bid, bid_qty, ask, ask_qty = values[:4]
    data = {"u": update_id, "s": "BTCUSDT", "b": wire(bid), "B": wire(bid_qty)}
    data |= {"a": wire(ask), "A": wire(ask_qty)}
    raw = orjson.dumps({"stream": "btcusdt@bookTicker", "data": data})
    expected = Quote(
        "BTCUSDT", RECEIVED, RECEIVED, update_id, *map(float, (bid, bid_qty, ask, ask_qty))
    )
    assert BinanceFeed().parser(["BTCUSDT"]).parse(raw, RECEIVED) == [expected]


levels = st.lists(st.tuples(positive_decimals, positive_decimals), max_size=20)


@PROPERTY
@given(st.integers(min_value=0, max_value=2**63 - 1), levels, levels)
def test_binance_depth20_round_trips_exactly(update_id: int, bids: list, asks: list):
    data = {
        "lastUpdateId": update_id,
        "bids": [[wire(p), wire(q)] for p, q in bids],
        "asks": [[wire(p), wire(q)] for p, q in asks],
    }
    raw = orjson.dumps({"stream": "btcusdt@depth20@100ms", "data": data})
    expected = Depth(
        "BTCUSDT",
        RECEIVED,
        RECEIVED,
        update_id,
        [float(p) for p, _ in bids],
        [float(q) for _, q in bids],
        [float(p) for p, _ in asks],
        [float(q) for _, q in asks],
    )
    assert BinanceFeed().parser(["BTCUSDT"]).parse(raw, RECEIVED) == [expected]


# --- Coinbase websocket -----------------------------------------------------------------------

COINBASE = {"BTC-USD"}
coinbase_keys = st.sampled_from(
    [
        *("product_id", "trade_id", "price", "size", "time", "side", "type", "updates"),
        *("tickers", "best_bid", "best_bid_quantity", "best_ask", "best_ask_quantity"),
        *("trades", "event_time", "price_level", "new_quantity"),
    ]
)
coinbase_items = st.dictionaries(
    coinbase_keys,
    json_values
    | st.sampled_from(["BTC-USD", "BUY", "SELL", "snapshot", "update", "bid", "offer"])
    | st.builds(wire, positive_decimals),
    max_size=8,
)


@PROPERTY
@given(st.binary(max_size=300))
def test_coinbase_any_bytes_parse_or_are_refused_never_raise(raw: bytes):
    for record in CoinbaseFeed().parser(["BTC-USD"]).parse(raw, RECEIVED):
        assert_valid(record, COINBASE)


@PROPERTY
@given(
    st.sampled_from(["market_trades", "ticker", "ticker_batch", "l2_data", "heartbeats"])
    | st.text(max_size=12),
    st.lists(
        st.dictionaries(
            st.sampled_from(["type", "product_id", "trades", "tickers", "updates"]),
            st.lists(coinbase_items, max_size=3)
            | st.sampled_from(["BTC-USD", "snapshot", "update"])
            | json_values,
            max_size=5,
        ),
        max_size=3,
    ),
    st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=3),
)
def test_coinbase_any_message_parses_to_valid_records_or_is_refused(
    channel: str, events: list, sequences: list[int]
):
    parser = CoinbaseFeed().parser(["BTC-USD"])  # stateful: books and sequence numbers
    for sequence in sequences:
        message = {"channel": channel, "timestamp": "2026-08-09T21:05:48.228568804Z"}
        message |= {"sequence_num": sequence, "events": events}
        for record in parser.parse(orjson.dumps(message), RECEIVED):
            assert_valid(record, COINBASE)


@PROPERTY
@given(
    st.integers(min_value=0, max_value=2**63 - 1),
    positive_decimals,
    positive_decimals,
    st.datetimes(
        min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2200, 1, 1), timezones=st.none()
    ),
    st.integers(min_value=0, max_value=999),
    st.sampled_from(["BUY", "SELL"]),
)
def test_coinbase_trades_round_trip_exactly(
    trade_id: int, price: Decimal, size: Decimal, moment: dt.datetime, nanos: int, side: str
):
    time = f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}{nanos:03d}Z"
    item = {"trade_id": str(trade_id), "product_id": "BTC-USD", "price": wire(price)}
    item |= {"size": wire(size), "time": time, "side": side}
    message = {"channel": "market_trades", "timestamp": time, "sequence_num": 0}
    message |= {"events": [{"type": "update", "trades": [item]}]}
    epoch = moment.replace(tzinfo=dt.UTC) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    ts_us = epoch // dt.timedelta(microseconds=1)
    expected = Trade("BTC-USD", trade_id, float(price), float(size), ts_us, side == "BUY", RECEIVED)
    assert CoinbaseFeed().parser(["BTC-USD"]).parse(orjson.dumps(message), RECEIVED) == [expected]


# --- the archive CSV and REST JSON ------------------------------------------------------------

csv_fields = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64).map(str),
    st.builds(wire, positive_decimals),
    st.sampled_from(["True", "False", "", "nan", "inf", "-1", "1e3", " 1", '"1"']),
    st.text(alphabet=st.characters(codec="ascii", exclude_characters="\n"), max_size=8),
)
csv_lines = st.lists(csv_fields, min_size=0, max_size=9).map(",".join)


def parse_or_refuse(payload: bytes) -> pl.DataFrame | None:
    try:
        frame, unit = parse_trades_csv_with_unit(payload, name="day.csv")
    except ArchiveFormatError as error:
        assert str(error).startswith("day.csv")
        return None
    assert frame.schema == RAW_TRADES
    assert unit in (None, "ms", "us")
    return frame


@PROPERTY
@given(st.binary(max_size=300))
def test_the_archive_csv_parser_reads_any_bytes_or_refuses_them_by_name(payload: bytes):
    parse_or_refuse(payload)


@PROPERTY
@given(st.lists(csv_lines, max_size=6), st.booleans())
def test_the_archive_csv_parser_reads_any_near_csv_or_refuses_it_by_name(
    lines: list[str], final_newline: bool
):
    payload = "\n".join(lines) + ("\n" if final_newline and lines else "")
    parse_or_refuse(payload.encode())


csv_rows = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=2**63 - 1),
        positive_decimals,
        positive_decimals,
        positive_decimals,
        st.booleans(),
        st.booleans(),
    ),
    min_size=1,
    max_size=30,
)


@PROPERTY
@given(csv_rows, st.sampled_from(["ms", "us"]), st.data())
def test_valid_archive_rows_round_trip_exactly_whole_and_in_pieces(
    rows: list[tuple], unit: str, data: st.DataObject
):
    times = data.draw(
        st.lists(ms_times if unit == "ms" else us_times, min_size=len(rows), max_size=len(rows))
    )
    lines = [
        f"{i},{wire(p)},{wire(q)},{wire(v)},{t},{m},{b}"
        for (i, p, q, v, m, b), t in zip(rows, times, strict=True)
    ]
    payload = ("\n".join(lines) + "\n").encode()
    frame, parsed_unit = parse_trades_csv_with_unit(payload, name="day.csv")
    scale = 1000 if unit == "ms" else 1
    expected = pl.DataFrame(
        {
            "trade_id": [row[0] for row in rows],
            "price": [float(row[1]) for row in rows],
            "qty": [float(row[2]) for row in rows],
            "quote_qty": [float(row[3]) for row in rows],
            "ts": [t * scale for t in times],
            "is_buyer_maker": [row[4] for row in rows],
        },
        schema_overrides={"ts": pl.Int64},
    ).with_columns(pl.col("ts").cast(RAW_TRADES["ts"]))
    assert parsed_unit == unit
    assert frame.equals(expected.cast(RAW_TRADES))  # type: ignore[arg-type]
    cut = data.draw(st.lists(st.integers(0, len(payload)), max_size=6).map(sorted))
    blocks = [payload[a:b] for a, b in zip([0, *cut], [*cut, len(payload)], strict=True)]
    size = data.draw(st.integers(1, 200))
    pieced, pieced_unit = parse_trades_csv_chunks(LineCutter(size).pieces(blocks), name="d")
    assert pieced_unit == unit and pieced.equals(frame)


@PROPERTY
@given(st.binary(max_size=200) | st.builds(orjson.dumps, json_values))
def test_the_rest_trades_parser_reads_any_body_or_refuses_it(body: bytes):
    try:
        frame = parse_rest_trades(body)
    except ResponseFormatError:
        return
    assert frame.schema == RAW_TRADES
