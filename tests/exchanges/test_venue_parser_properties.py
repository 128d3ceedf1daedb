"""Property tests of the OKX and Deribit parsers and books: any input parses to valid records
or is refused (a `Reject`, never an exception, so the stream goes on); valid messages
round-trip exactly; generated books verify against independent rebuilds.

The independent rebuilds follow the venues' documents, not the modules: OKX's checksum is
the CRC32 (signed 32-bit) of ``bid1Px:bid1Sz:ask1Px:ask1Sz:...`` over the best 25 levels in
the exact strings sent; a Deribit book is its snapshot with each change's levels written
over it (``delete`` removes the price).
"""

from __future__ import annotations

import binascii
import math
from decimal import Decimal

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.properties import (
    PROPERTY,
    RECEIVED,
    assert_valid,
    json_values,
    ms_times,
    positive_decimals,
    wire,
)

from marketlake.exchanges.book import BookEvent
from marketlake.exchanges.deribit.websocket import DeribitParser
from marketlake.exchanges.feed import Depth, Quote, Trade
from marketlake.exchanges.okx.books import checksum
from marketlake.exchanges.okx.websocket import OkxParser


def assert_valid_venue(record: object, venue: str, symbols: set[str]) -> None:
    """A record or a book's sync transition, naming a subscribed instrument."""
    if isinstance(record, BookEvent):
        assert record.venue == venue and record.instrument in symbols
        assert record.levels_affected >= 0 and record.skipped >= 0
    else:
        assert_valid(record, symbols)


#: Text a careless field check could take for digits or numbers.
numberish_text = st.sampled_from(
    ["", "0", "-1", "1e3", "nan", "inf", "1_000", " 1", "²³", "١٢٣", "1652459226124", "12"]
) | st.text(alphabet="0123456789²٣", min_size=1, max_size=14)


def near_levels(level: list) -> st.SearchStrategy[list]:
    """A side of one valid level with one element replaced by any JSON value."""
    return st.builds(
        lambda i, value: [[*level[:i], value, *level[i + 1 :]]],
        st.integers(0, len(level) - 1),
        json_values | numberish_text,
    )


def replacements(
    value: object, level: list, scalars: st.SearchStrategy
) -> st.SearchStrategy[object]:
    """What may stand in for ``value``: for a side, mostly near-valid levels; else mostly
    text a careless number check could take for digits."""
    if isinstance(value, list):
        return near_levels(level) | scalars
    return numberish_text | scalars


# --- OKX --------------------------------------------------------------------------------------

OKX = {"BTC-USDT"}
OKX_LEVEL = ["30243.4", "1.2", "0", "3"]
okx_scalars = json_values | numberish_text | st.builds(wire, positive_decimals)
okx_levels = st.lists(
    st.lists(st.builds(wire, positive_decimals) | st.just("0") | okx_scalars, max_size=4)
    | okx_scalars,
    max_size=4,
)
okx_items = st.dictionaries(
    st.sampled_from(
        [
            *("instId", "tradeId", "px", "sz", "side", "ts", "count", "bids", "asks"),
            *("checksum", "seqId", "prevSeqId"),
        ]
    ),
    okx_scalars
    | okx_levels
    | st.sampled_from(["BTC-USDT", "buy", "sell"])
    | st.integers(min_value=-2, max_value=3),
    max_size=9,
)
okx_messages = st.dictionaries(
    st.sampled_from(["arg", "data", "action", "event", "code", "msg"]),
    st.fixed_dictionaries(
        {
            "channel": st.sampled_from(["trades", "bbo-tbt", "books", "books-l2-tbt"])
            | okx_scalars,
            "instId": st.sampled_from(["BTC-USDT", "ETH-USDT"]) | okx_scalars,
        }
    )
    | st.lists(okx_items | okx_scalars, max_size=3)
    | st.sampled_from(["snapshot", "update", "subscribe", "error", "notice"])
    | json_values,
    max_size=6,
)


@PROPERTY
@given(st.binary(max_size=300))
def test_okx_any_bytes_parse_or_are_refused_never_raise(raw: bytes):
    for record in OkxParser(["BTC-USDT"]).parse(raw, RECEIVED):
        assert_valid_venue(record, "okx", OKX)


@PROPERTY
@given(st.lists(okx_messages, min_size=1, max_size=4))
def test_okx_any_message_parses_to_valid_records_or_is_refused(messages: list[dict]):
    parser = OkxParser(["BTC-USDT"])  # stateful: books and their sequence ids
    for message in messages:
        for record in parser.parse(orjson.dumps(message), RECEIVED):
            assert_valid_venue(record, "okx", OKX)


def okx_push(channel: str, item: dict, action: str | None = None) -> bytes:
    message: dict = {"arg": {"channel": channel, "instId": "BTC-USDT"}, "data": [item]}
    if action is not None:
        message["action"] = action
    return orjson.dumps(message)


@PROPERTY
@given(
    st.integers(min_value=0, max_value=2**63 - 1),
    positive_decimals,
    positive_decimals,
    ms_times,
    st.sampled_from(["buy", "sell"]),
)
def test_okx_trades_round_trip_exactly(
    trade_id: int, price: Decimal, size: Decimal, time: int, side: str
):
    item = {"instId": "BTC-USDT", "tradeId": str(trade_id), "px": wire(price), "sz": wire(size)}
    item |= {"side": side, "ts": str(time), "count": "1"}
    expected = Trade(
        "BTC-USDT", trade_id, float(price), float(size), time * 1000, side == "sell", RECEIVED
    )
    assert OkxParser(["BTC-USDT"]).parse(okx_push("trades", item), RECEIVED) == [expected]


@PROPERTY
@given(
    st.lists(positive_decimals, min_size=4, max_size=4),
    ms_times,
    st.integers(min_value=0, max_value=2**63 - 1),
)
def test_okx_bbo_tbt_round_trips_exactly(values: list[Decimal], time: int, seq_id: int):
    bid, bid_size, ask, ask_size = values
    item = {"bids": [[wire(bid), wire(bid_size), "0", "3"]], "ts": str(time), "seqId": seq_id}
    item["asks"] = [[wire(ask), wire(ask_size), "0", "1"]]
    expected = Quote(
        "BTC-USDT", time * 1000, RECEIVED, seq_id, *map(float, (bid, bid_size, ask, ask_size))
    )
    assert OkxParser(["BTC-USDT"]).parse(okx_push("bbo-tbt", item), RECEIVED) == [expected]


VALID_OKX_ITEMS = {
    "trades": {"instId": "BTC-USDT", "tradeId": "338476307", "px": "30243.5", "sz": "0.1"}
    | {"side": "buy", "ts": "1652459226124"},
    "bbo-tbt": {"bids": [["30243.4", "1.2", "0", "3"]], "asks": [["30243.5", "0.5", "0", "1"]]}
    | {"ts": "1652459226124", "seqId": 7},
    "books": {"bids": [["30243.4", "1.2", "0", "3"]], "asks": [["30243.5", "0.5", "0", "1"]]}
    | {"ts": "1652459226124", "seqId": 7, "prevSeqId": -1},
}


@pytest.mark.parametrize("channel", sorted(VALID_OKX_ITEMS))
@PROPERTY
@given(data=st.data())
def test_okx_a_valid_push_with_any_one_field_replaced_parses_or_is_refused(
    channel: str, data: st.DataObject
):
    item = dict(VALID_OKX_ITEMS[channel])
    key = data.draw(st.sampled_from(sorted(item)))
    item[key] = data.draw(replacements(item[key], OKX_LEVEL, okx_scalars))
    raw = okx_push(channel, item, "snapshot" if channel == "books" else None)
    for record in OkxParser(["BTC-USDT"]).parse(raw, RECEIVED):
        assert_valid_venue(record, "okx", OKX)


def okx_documented_checksum(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> int:
    """OKX v5 docs, "Checksum": best 25 of each side interleaved bid, ask, bid, ask...; where
    one side runs out, the other's levels follow alone; CRC32 as a signed 32-bit integer."""
    fields: list[str] = []
    for i in range(25):
        for side in (bids, asks):
            if i < len(side):
                fields.append(f"{side[i][0]}:{side[i][1]}")
    crc = binascii.crc32(":".join(fields).encode("ascii"))
    return int.from_bytes(crc.to_bytes(4, "big"), "big", signed=True)


#: A price as OKX may write it: 8 places, or as few as the value needs ("0.1" vs "0.10").
okx_price_texts = st.tuples(positive_decimals, st.booleans()).map(
    lambda pair: wire(pair[0]) if pair[1] else format(pair[0].normalize(), "f")
)
okx_side = st.lists(
    st.tuples(okx_price_texts, st.builds(wire, positive_decimals)),
    max_size=40,
    unique_by=lambda level: float(level[0]),
)
okx_update_side = st.lists(
    st.tuples(okx_price_texts, st.builds(wire, positive_decimals) | st.just("0")),
    max_size=8,
    unique_by=lambda level: float(level[0]),
)


def best(side: dict[float, tuple[str, str]], descending: bool) -> list[tuple[str, str]]:
    return [side[price] for price in sorted(side, reverse=descending)]


@PROPERTY
@given(okx_side, okx_side, st.lists(st.tuples(okx_update_side, okx_update_side), max_size=5))
def test_okx_book_checksums_equal_the_documented_computation_at_every_message(
    bids: list, asks: list, updates: list
):
    parser = OkxParser(["BTC-USDT"])
    book: tuple[dict, dict] = ({}, {})
    messages = [("snapshot", bids, asks), *(("update", b, a) for b, a in updates)]
    for seq_id, (action, bid_levels, ask_levels) in enumerate(messages, start=10):
        for side, levels in zip(book, (bid_levels, ask_levels), strict=True):
            for price, size in levels:
                if float(size) == 0.0:
                    side.pop(float(price), None)
                else:
                    side[float(price)] = (price, size)
        best_bids, best_asks = best(book[0], True), best(book[1], False)
        expected = okx_documented_checksum(best_bids, best_asks)
        assert checksum(best_bids, best_asks) == expected
        item = {"bids": [[p, s, "0", "1"] for p, s in bid_levels], "ts": "1652459226124"}
        item |= {"asks": [[p, s, "0", "1"] for p, s in ask_levels], "checksum": expected}
        item |= {"seqId": seq_id, "prevSeqId": -1 if action == "snapshot" else seq_id - 1}
        records = parser.parse(okx_push("books", item, action), RECEIVED)
        assert not [r for r in records if not isinstance(r, Depth)], records
        if records:
            (depth,) = records
            assert depth.bid_prices == [float(p) for p, _ in best_bids[:20]]
            assert depth.bid_qtys == [float(s) for _, s in best_bids[:20]]
            assert depth.ask_prices == [float(p) for p, _ in best_asks[:20]]
            assert depth.ask_qtys == [float(s) for _, s in best_asks[:20]]
    assert parser.books.verified == len(messages)


# --- Deribit ----------------------------------------------------------------------------------

INSTRUMENT = "BTC-PERPETUAL"
DERIBIT = {INSTRUMENT}
DERIBIT_LEVEL = ["new", 32000.0, 10.0]
deribit_scalars = json_values | numberish_text | st.floats(min_value=0.5, max_value=1e6)
deribit_levels = st.lists(
    st.lists(st.sampled_from(["new", "change", "delete"]) | deribit_scalars, min_size=2, max_size=4)
    | deribit_scalars,
    max_size=4,
)
deribit_data = st.dictionaries(
    st.sampled_from(
        [
            *("type", "instrument_name", "timestamp", "change_id", "prev_change_id", "bids"),
            *("asks", "trade_seq", "price", "amount", "direction", "best_bid_price"),
            *("best_bid_amount", "best_ask_price", "best_ask_amount"),
        ]
    ),
    deribit_scalars
    | deribit_levels
    | st.sampled_from([INSTRUMENT, "snapshot", "change", "buy", "sell"])
    | ms_times
    | st.integers(min_value=-1, max_value=4),
    max_size=10,
)
deribit_messages = st.fixed_dictionaries(
    {"jsonrpc": st.just("2.0")},
    optional={
        "method": st.sampled_from(["subscription", "heartbeat"]) | deribit_scalars,
        "params": st.dictionaries(
            st.sampled_from(["channel", "data", "type"]),
            st.sampled_from(
                [
                    *(f"book.{INSTRUMENT}.raw", f"trades.{INSTRUMENT}.raw", f"quote.{INSTRUMENT}"),
                    *("book.ETH-PERPETUAL.100ms", "test_request", "ticker.x"),
                ]
            )
            | deribit_data
            | st.lists(deribit_data | deribit_scalars, max_size=3)
            | deribit_scalars,
            max_size=3,
        ),
        "id": deribit_scalars,
        "result": deribit_scalars,
        "error": deribit_scalars,
    },
)


@PROPERTY
@given(st.binary(max_size=300))
def test_deribit_any_bytes_parse_or_are_refused_never_raise(raw: bytes):
    for record in DeribitParser([INSTRUMENT]).parse(raw, RECEIVED):
        assert_valid_venue(record, "deribit", DERIBIT)


@PROPERTY
@given(st.lists(deribit_messages, min_size=1, max_size=4))
def test_deribit_any_message_parses_to_valid_records_or_is_refused(messages: list[dict]):
    parser = DeribitParser([INSTRUMENT])  # stateful: books and their change ids
    for message in messages:
        for record in parser.parse(orjson.dumps(message), RECEIVED):
            assert_valid_venue(record, "deribit", DERIBIT)


def deribit_push(channel: str, data: object) -> bytes:
    params = {"channel": channel, "data": data}
    return orjson.dumps({"jsonrpc": "2.0", "method": "subscription", "params": params})


VALID_DERIBIT_DATA = {
    f"trades.{INSTRUMENT}.raw": [
        {"instrument_name": INSTRUMENT, "trade_seq": 1, "price": 32000.5, "amount": 10.0}
        | {"timestamp": 1626912000000, "direction": "buy"}
    ],
    f"quote.{INSTRUMENT}": {"instrument_name": INSTRUMENT, "timestamp": 1626912000000}
    | {"best_bid_price": 32000.0, "best_bid_amount": 10.0}
    | {"best_ask_price": 32000.5, "best_ask_amount": 20.0},
    f"book.{INSTRUMENT}.raw": {"type": "snapshot", "instrument_name": INSTRUMENT}
    | {"timestamp": 1626912000000, "change_id": 5, "bids": [["new", 32000.0, 10.0]]}
    | {"asks": [["new", 32000.5, 20.0], ["change", 32001.0, 5.0]]},
}


@pytest.mark.parametrize("channel", sorted(VALID_DERIBIT_DATA))
@PROPERTY
@given(data=st.data())
def test_deribit_a_valid_push_with_any_one_field_replaced_parses_or_is_refused(
    channel: str, data: st.DataObject
):
    value = VALID_DERIBIT_DATA[channel]
    item = dict(value[0] if isinstance(value, list) else value)
    key = data.draw(st.sampled_from(sorted(item)))
    item[key] = data.draw(replacements(item[key], DERIBIT_LEVEL, deribit_scalars))
    raw = deribit_push(channel, [item] if isinstance(value, list) else item)
    for record in DeribitParser([INSTRUMENT]).parse(raw, RECEIVED):
        assert_valid_venue(record, "deribit", DERIBIT)


#: Deribit sends JSON numbers: a price on a tick, an amount in USD or coins.
deribit_numbers = positive_decimals.map(float)


@PROPERTY
@given(
    st.lists(
        st.tuples(deribit_numbers, deribit_numbers, ms_times, st.sampled_from(["buy", "sell"])),
        min_size=1,
        max_size=5,
    ),
    st.lists(st.integers(min_value=0, max_value=2**63 - 1), min_size=5, max_size=5, unique=True),
)
def test_deribit_trades_round_trip_exactly_in_trade_seq_order(trades: list, seqs: list[int]):
    data = [
        {"instrument_name": INSTRUMENT, "trade_seq": seq, "trade_id": f"BTC-{seq}", "price": p}
        | {"amount": a, "timestamp": t, "direction": d, "tick_direction": 0}
        for seq, (p, a, t, d) in zip(seqs, trades, strict=False)
    ]
    expected = sorted(
        Trade(INSTRUMENT, seq, p, a, t * 1000, d == "sell", RECEIVED)
        for seq, (p, a, t, d) in zip(seqs, trades, strict=False)
    )
    parsed = DeribitParser([INSTRUMENT]).parse(deribit_push(f"trades.{INSTRUMENT}.raw", data), 1)
    assert parsed == [t._replace(received_at_us=1) for t in expected]


@PROPERTY
@given(st.lists(deribit_numbers, min_size=4, max_size=4), ms_times)
def test_deribit_quotes_round_trip_exactly(values: list[float], time: int):
    bid, bid_amount, ask, ask_amount = values
    data = {"instrument_name": INSTRUMENT, "timestamp": time, "best_bid_price": bid}
    data |= {"best_bid_amount": bid_amount, "best_ask_price": ask, "best_ask_amount": ask_amount}
    expected = Quote(INSTRUMENT, time * 1000, RECEIVED, None, bid, bid_amount, ask, ask_amount)
    parsed = DeribitParser([INSTRUMENT]).parse(deribit_push(f"quote.{INSTRUMENT}", data), RECEIVED)
    assert parsed == [expected]


deribit_side = st.dictionaries(deribit_numbers, deribit_numbers, max_size=40)


@st.composite
def deribit_change(draw: st.DrawFn, side: dict[float, float]) -> list[list]:
    """Valid changes to one side: ``new`` at a free price, ``change``/``delete`` at a held one."""
    levels: list[list] = []
    for _ in range(draw(st.integers(0, 6))):
        held = sorted(side)
        kind = draw(st.sampled_from(["new", "change", "delete"] if held else ["new"]))
        if kind == "new":
            price = draw(deribit_numbers.filter(lambda p: p not in side))
            side[price] = draw(deribit_numbers)
            levels.append(["new", price, side[price]])
        elif kind == "change":
            price = draw(st.sampled_from(held))
            side[price] = draw(deribit_numbers)
            levels.append(["change", price, side[price]])
        else:
            price = draw(st.sampled_from(held))
            del side[price]
            levels.append(["delete", price, 0.0])
    return levels


@PROPERTY
@given(deribit_side, deribit_side, st.integers(0, 5), st.data())
def test_deribit_a_snapshot_and_its_change_chain_rebuild_the_independent_book(
    bids: dict, asks: dict, changes: int, data: st.DataObject
):
    parser = DeribitParser([INSTRUMENT])
    channel = f"book.{INSTRUMENT}.raw"
    change_id = data.draw(st.integers(0, 2**40))
    message = {"type": "snapshot", "instrument_name": INSTRUMENT, "timestamp": 1626912000000}
    message |= {"change_id": change_id, "bids": [["new", p, a] for p, a in bids.items()]}
    message["asks"] = [["new", p, a] for p, a in asks.items()]
    records = parser.parse(deribit_push(channel, message), RECEIVED)
    book = (dict(bids), dict(asks))
    for _ in range(changes):
        prev, change_id = change_id, change_id + data.draw(st.integers(1, 1000))
        message = {"type": "change", "instrument_name": INSTRUMENT, "timestamp": 1626912000001}
        message |= {"change_id": change_id, "prev_change_id": prev}
        message |= {"bids": data.draw(deribit_change(book[0]))}
        message |= {"asks": data.draw(deribit_change(book[1]))}
        records += parser.parse(deribit_push(channel, message), RECEIVED)
    assert all(type(r) is Depth for r in records) and len(records) == changes + 1
    expected_bids = [(p, book[0][p]) for p in sorted(book[0], reverse=True)]
    expected_asks = [(p, book[1][p]) for p in sorted(book[1])]
    synced = parser.books.books[INSTRUMENT]
    assert synced.in_sync and synced.sequence == change_id
    assert synced.book.state() == (expected_bids, expected_asks)
    last = records[-1]
    assert list(zip(last.bid_prices, last.bid_qtys, strict=True)) == expected_bids[:20]
    assert list(zip(last.ask_prices, last.ask_qtys, strict=True)) == expected_asks[:20]
    assert last.last_update_id == change_id and not math.isnan(last.ts_us)
