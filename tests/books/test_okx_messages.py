"""OKX ``trades`` and ``bbo-tbt`` become the normalized records; bad fields are refused by
name; control messages are told apart from data."""

from __future__ import annotations

import orjson
import pytest
from support.recordings import received_frames
from support.samples import OKX_BBO_TBT_DOC, OKX_SESSION, OKX_TRADES_DOC

from marketlake.exchanges.feed import Quote, Reject, Resync, Trade
from marketlake.exchanges.okx.websocket import OkxParser, subscribe

INSTRUMENTS = ("BTC-USDT", "UNI-USD-SWAP", "BTC-USD-220527")


def recorded_trades() -> list[tuple[int, dict]]:
    """(receive time, sent trade) of every trade in the recording."""
    return [
        (received_at_us, item)
        for received_at_us, frame in received_frames(OKX_SESSION)
        if frame.startswith(b'{"arg":{"channel":"trades"')
        for item in orjson.loads(frame)["data"]
    ]


def test_every_recorded_trade_becomes_a_trade_with_the_taker_side_read_as_documented():
    parser = OkxParser(INSTRUMENTS)
    trades = [
        record
        for received_at_us, frame in received_frames(OKX_SESSION)
        for record in parser.parse(frame, received_at_us)
        if type(record) is Trade
    ]
    sent = recorded_trades()
    assert len(trades) == len(sent) == 46
    for trade, (received_at_us, item) in zip(trades, sent, strict=True):
        assert trade == Trade(
            item["instId"],
            int(item["tradeId"]),
            float(item["px"]),
            float(item["sz"]),
            int(item["ts"]) * 1000,
            item["side"] == "sell",  # the taker sold: the buyer was the maker
            received_at_us,
        )
    btc = [t.trade_id for t in trades if t.symbol == "BTC-USDT"]
    assert btc == list(range(btc[0], btc[0] + len(btc)))  # ids run +1 with no holes


def test_a_trade_with_the_newer_count_field_is_read_the_same_way():
    message = orjson.loads(OKX_TRADES_DOC.read_bytes())
    (trade,) = OkxParser(["BTC-USD"]).parse(OKX_TRADES_DOC.read_bytes(), 5)
    item = message["data"][0]
    assert "count" in item
    assert (trade.trade_id, trade.price, trade.qty) == (
        int(item["tradeId"]),
        float(item["px"]),
        float(item["sz"]),
    )


def test_bbo_tbt_becomes_a_quote_carrying_its_sequence_id():
    message = orjson.loads(OKX_BBO_TBT_DOC.read_bytes())
    instrument = message["arg"]["instId"]
    (quote,) = OkxParser([instrument]).parse(OKX_BBO_TBT_DOC.read_bytes(), 7)
    data = message["data"][0]
    assert quote == Quote(
        instrument,
        int(data["ts"]) * 1000,
        7,
        data["seqId"],
        float(data["bids"][0][0]),
        float(data["bids"][0][1]),
        float(data["asks"][0][0]),
        float(data["asks"][0][1]),
    )


def one_trade(**change: object) -> bytes:
    item = {"instId": "BTC-USDT", "tradeId": "338476307", "px": "30243.5", "sz": "0.1"}
    item |= {"side": "buy", "ts": "1652459226124"}
    for key, value in change.items():
        if value is None:
            del item[key]
        else:
            item[key] = value
    return orjson.dumps({"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": [item]})


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"px": "abc"}, "mistyped field 'px': not a decimal number"),
        ({"px": 30243.5}, "mistyped field 'px': expected str"),
        ({"sz": "0"}, "non-positive qty"),
        ({"tradeId": None}, "missing field 'tradeId'"),
        ({"tradeId": "12a"}, "mistyped field 'tradeId': not an integer"),
        ({"tradeId": "²"}, "mistyped field 'tradeId': not an integer"),  # isdigit, not int()
        ({"tradeId": "١٢٣"}, "mistyped field 'tradeId': not an integer"),  # Arabic-Indic
        ({"ts": "²" * 13}, "mistyped field 'ts': not a 13-digit epoch in ms"),
        ({"ts": "١" * 13}, "mistyped field 'ts': not a 13-digit epoch in ms"),
        ({"side": "long"}, "mistyped field 'side': 'long'"),
        ({"ts": "1652459226"}, "mistyped field 'ts': not a 13-digit epoch in ms"),
        ({"instId": "ETH-USDT"}, "instId 'ETH-USDT' does not match channel BTC-USDT"),
    ],
)
def test_a_bad_trade_is_refused_with_the_field_named(change, reason):
    (rejected,) = OkxParser(["BTC-USDT"]).parse(one_trade(**change), 1)
    assert type(rejected) is Reject
    assert (rejected.reason, rejected.symbol) == (reason, "BTC-USDT")


def test_a_bbo_with_an_empty_side_is_refused():
    message = orjson.loads(OKX_BBO_TBT_DOC.read_bytes())
    message["data"][0]["asks"] = []
    (rejected,) = OkxParser([message["arg"]["instId"]]).parse(orjson.dumps(message), 1)
    assert rejected.reason == "empty field 'asks': no best level"


def test_control_messages_are_told_apart_from_data():
    parser = OkxParser(["BTC-USDT"])
    assert parser.parse(b"pong", 1) == []
    assert parser.parse(received_frames(OKX_SESSION)[0][1], 1) == []  # {"event":"subscribe"}
    error = b'{"event":"error","code":"60012","msg":"Invalid request"}'
    assert parser.parse(error, 1)[0].reason == "exchange error: 60012 Invalid request"
    notice = b'{"event":"notice","code":"64008","msg":"The connection will soon be closed"}'
    (resync,) = parser.parse(notice, 1)
    assert type(resync) is Resync and resync.rollover
    assert parser.parse(b"{", 1)[0].reason == "not json"
    unhashable = b'{"event":[]}'  # once a TypeError out of the parser
    assert parser.parse(unhashable, 1)[0].reason == "not an OKX push (no 'arg' and 'data')"
    other = b'{"arg":{"channel":"trades","instId":"ETH-USDT"},"data":[]}'
    assert parser.parse(other, 1)[0].reason == "symbol not subscribed: ETH-USDT"


def test_one_subscribe_message_asks_for_every_channel_of_every_instrument():
    sent = orjson.loads(subscribe(["BTC-USDT", "ETH-USDT"]))
    assert sent["op"] == "subscribe"
    assert {(a["channel"], a["instId"]) for a in sent["args"]} == {
        (channel, inst)
        for channel in ("trades", "bbo-tbt", "books")
        for inst in ("BTC-USDT", "ETH-USDT")
    }
