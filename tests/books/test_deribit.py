"""Deribit v2: the recorded session (2021-07-22) rebuilds with an unbroken change-id chain; a
lost or reordered change is caught; trades, quotes and heartbeats are read as documented."""

from __future__ import annotations

import orjson
import pytest
from support.recordings import instrument_of, received_frames
from support.samples import DERIBIT_QUOTE, DERIBIT_SESSION, DERIBIT_TRADES

from marketlake.exchanges.book import BOOK_BAD_UPDATE, BOOK_GAP, BOOK_RESYNCED, BookEvent
from marketlake.exchanges.deribit.books import resubscribe
from marketlake.exchanges.deribit.websocket import (
    DeribitParser,
    heartbeat_reply,
    set_heartbeat,
    subscribe,
)
from marketlake.exchanges.feed import Depth, Quote, Reject, Trade

Frames = list[tuple[int, bytes]]
BUSY = "BTC-24SEP21-8000-P"  # the instrument with the longest chain in the recording


@pytest.fixture(scope="module")
def frames() -> Frames:
    return [(t, f) for t, f in received_frames(DERIBIT_SESSION) if b'"channel":"book.' in f]


@pytest.fixture(scope="module")
def instruments() -> list[str]:
    sent = DERIBIT_SESSION.read_bytes().split(b"\n")[1].partition(b": ")[2]
    channels = orjson.loads(sent)["params"]["channels"]
    return sorted({channel.split(".")[1] for channel in channels})


def run(frames: Frames, instruments, parser: DeribitParser | None = None):
    parser = parser or DeribitParser(instruments)
    records = []
    for received_at_us, frame in frames:
        records.extend(parser.parse(frame, received_at_us))
    return parser, records


def oracle(frames: Frames):
    """An independent rebuild: a dict per side, sorted on read. Yields (instrument, top-20
    bids, top-20 asks) after each message, and checks the chain as it goes."""
    books: dict[str, tuple[dict, dict]] = {}
    last: dict[str, int] = {}
    for _, frame in frames:
        data = orjson.loads(frame)["params"]["data"]
        instrument = data["instrument_name"]
        if data["type"] == "snapshot":
            assert "prev_change_id" not in data  # real snapshots leave it out
            books[instrument] = ({}, {})
        else:
            assert data["prev_change_id"] == last[instrument]
        last[instrument] = data["change_id"]
        for side, key in zip(books[instrument], ("bids", "asks"), strict=True):
            for action, price, amount in data[key]:
                if action == "delete":
                    side.pop(price)
                else:
                    side[price] = amount
        bids, asks = books[instrument]
        yield (
            instrument,
            [(p, bids[p]) for p in sorted(bids, reverse=True)[:20]],
            [(p, asks[p]) for p in sorted(asks)[:20]],
        )


def events(records: list) -> list[BookEvent]:
    return [r for r in records if type(r) is BookEvent]


def depths(records: list, instrument: str) -> list[Depth]:
    return [r for r in records if type(r) is Depth and r.symbol == instrument]


def test_the_recorded_session_rebuilds_every_book_with_an_unbroken_change_id_chain(
    frames, instruments
):
    expected = list(oracle(frames))
    kinds = [orjson.loads(f)["params"]["data"]["type"] for _, f in frames]
    assert (kinds.count("snapshot"), kinds.count("change")) == (10, 36)

    parser, records = run(frames, instruments)

    assert events(records) == [] and [r for r in records if type(r) is Reject] == []
    assert parser.books.chained == 36
    depth = [r for r in records if type(r) is Depth]
    assert len(depth) == len(frames)
    for record, (instrument, bids, asks) in zip(depth, expected, strict=True):
        assert record.symbol == instrument
        assert list(zip(record.bid_prices, record.bid_qtys, strict=True)) == bids
        assert list(zip(record.ask_prices, record.ask_qtys, strict=True)) == asks
    last = depths(records, BUSY)[-1]
    assert last.last_update_id == orjson.loads(frames[-1][1])["params"]["data"]["change_id"]


def test_the_whole_recording_parses_and_only_unsubscribed_ticker_pushes_are_refused(instruments):
    parser, records = run(received_frames(DERIBIT_SESSION), instruments)
    refused = {r.reason.split("'")[1].split(".")[0] for r in records if type(r) is Reject}
    assert refused == {"ticker"}  # the recording also subscribed to tickers
    assert parser.books.chained == 36


def change_positions(frames: Frames, instrument: str) -> list[int]:
    return [
        i
        for i, (_, f) in enumerate(frames)
        if instrument_of(f) == instrument and b'"type":"change"' in f
    ]


def fresh_snapshot(frames: Frames, upto: int, instruments) -> tuple[int, bytes]:
    """What Deribit would send on resubscribing right after ``frames[upto]``: the whole book
    at that change (rebuilt from the uninterrupted stream) and its ``change_id``."""
    reference, _ = run(frames[: upto + 1], instruments)
    message = orjson.loads(frames[upto][1])
    data = message["params"]["data"]
    book = reference.books.books[data["instrument_name"]].book
    snapshot_data = {
        "type": "snapshot",
        "timestamp": data["timestamp"],
        "instrument_name": data["instrument_name"],
        "change_id": data["change_id"],
        "bids": [["new", p, a] for p, a in book.bids.levels()],
        "asks": [["new", p, a] for p, a in book.asks.levels()],
    }
    message["params"]["data"] = snapshot_data
    return frames[upto][0], orjson.dumps(message)


def assert_caught_then_resynced(frames: Frames, faulty: Frames, instruments, expected, got):
    _, broken = run(faulty, instruments)
    (event,) = events(broken)
    assert (event.kind, event.instrument, event.expected, event.got) == (
        BOOK_GAP,
        BUSY,
        expected,
        got,
    )
    detected_at = broken.index(event)
    assert depths(broken[detected_at:], BUSY) == []

    resync_at = change_positions(frames, BUSY)[-4]
    parser, _ = run(faulty[: faulty.index(frames[resync_at]) + 1], instruments)
    parser, after = run(
        [fresh_snapshot(frames, resync_at, instruments), *frames[resync_at + 1 :]],
        instruments,
        parser,
    )
    assert [e.kind for e in events(after)] == [BOOK_RESYNCED]
    reference, reference_records = run(frames, instruments)
    assert parser.books.books[BUSY].book.state() == reference.books.books[BUSY].book.state()
    assert depths(after, BUSY) == depths(reference_records, BUSY)[-4:]


def change_ids(frame: bytes) -> tuple[int, int]:
    data = orjson.loads(frame)["params"]["data"]
    return data["prev_change_id"], data["change_id"]


def test_a_dropped_change_breaks_the_chain_and_a_fresh_snapshot_restores_the_book(
    frames, instruments
):
    k = change_positions(frames, BUSY)[5]
    _, dropped_id = change_ids(frames[k][1])
    next_prev, _ = change_ids(frames[change_positions(frames, BUSY)[6]][1])
    faulty = frames[:k] + frames[k + 1 :]
    expected = change_ids(frames[k][1])[0]
    assert next_prev == dropped_id
    assert_caught_then_resynced(frames, faulty, instruments, expected, dropped_id)


def test_two_changes_swapped_break_the_chain(frames, instruments):
    k, following = change_positions(frames, BUSY)[8:10]
    faulty = list(frames)
    faulty[k], faulty[following] = faulty[following], faulty[k]
    expected, got = change_ids(frames[k][1])[0], change_ids(frames[following][1])[0]
    assert_caught_then_resynced(frames, faulty, instruments, expected, got)


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        ("replace", "mistyped field 'asks': unknown action 'replace'"),
        ([], "mistyped field 'asks': unknown action '[]'"),  # unhashable: once a TypeError
    ],
)
def test_a_malformed_change_is_quarantined_and_the_book_goes_out_of_sync(
    frames, instruments, action, reason
):
    k = change_positions(frames, BUSY)[2]
    message = orjson.loads(frames[k][1])
    message["params"]["data"]["asks"] = [[action, 1.0, 2.0]]
    faulty = [*frames[:k], (frames[k][0], orjson.dumps(message)), *frames[k + 1 :]]
    _, records = run(faulty, instruments)
    (rejected,) = [r for r in records if type(r) is Reject]
    assert rejected.reason == reason
    assert [e.kind for e in events(records)] == [BOOK_BAD_UPDATE]


def test_resubscribing_asks_deribit_for_a_fresh_book_snapshot():
    unsubscribe, subscribe_again = map(orjson.loads, resubscribe(BUSY, request_id=7))
    assert unsubscribe["method"] == "public/unsubscribe" and unsubscribe["id"] == 7
    assert subscribe_again["method"] == "public/subscribe" and subscribe_again["id"] == 8
    assert subscribe_again["params"] == {"channels": [f"book.{BUSY}.raw"]}


# --- trades, quotes, heartbeats -----------------------------------------------------------


def test_trades_take_their_id_from_trade_seq_and_the_taker_side_from_direction():
    parser = DeribitParser(["BTC-PERPETUAL"])
    trades = parser.parse(DERIBIT_TRADES.read_bytes(), received_at_us=1)
    sent = orjson.loads(DERIBIT_TRADES.read_bytes())["params"]["data"]
    assert [type(t) for t in trades] == [Trade, Trade]
    assert [t.trade_id for t in trades] == [s["trade_seq"] for s in sent]
    assert [t.qty for t in trades] == [s["amount"] for s in sent]
    assert [t.ts_us for t in trades] == [s["timestamp"] * 1000 for s in sent]
    assert [t.is_buyer_maker for t in trades] == [s["direction"] == "sell" for s in sent]


def test_a_quote_becomes_the_best_bid_and_ask():
    (quote,) = DeribitParser(["BTC-PERPETUAL"]).parse(DERIBIT_QUOTE.read_bytes(), 1)
    sent = orjson.loads(DERIBIT_QUOTE.read_bytes())["params"]["data"]
    assert quote == Quote(
        "BTC-PERPETUAL",
        sent["timestamp"] * 1000,
        1,
        None,
        sent["best_bid_price"],
        sent["best_bid_amount"],
        sent["best_ask_price"],
        sent["best_ask_amount"],
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"price": "92294.5"}, "mistyped field 'price'"),
        ({"trade_seq": None}, "missing field 'trade_seq'"),
        ({"direction": "up"}, "mistyped field 'direction': 'up'"),
        ({"amount": 0.0}, "non-positive qty"),
        ({"timestamp": 1765531356}, "mistyped field 'timestamp': not a 13-digit epoch in ms"),
        ({"instrument_name": "ETH-PERPETUAL"}, "instrument_name 'ETH-PERPETUAL' does not match"),
    ],
)
def test_a_bad_trade_is_refused_with_the_field_named(change, reason):
    message = orjson.loads(DERIBIT_TRADES.read_bytes())
    trade = message["params"]["data"][0]
    for key, value in change.items():
        if value is None:
            del trade[key]
        else:
            trade[key] = value
    records = DeribitParser(["BTC-PERPETUAL"]).parse(orjson.dumps(message), 1)
    rejected = [r for r in records if type(r) is Reject]
    assert len(rejected) == 1 and rejected[0].reason.startswith(reason)
    assert rejected[0].symbol == "BTC-PERPETUAL"
    assert [type(r) for r in records].count(Trade) == 1  # the good trade still lands


def test_a_test_request_heartbeat_is_answered_with_public_test():
    heartbeat = b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}'
    reply = orjson.loads(heartbeat_reply(heartbeat, request_id=9))  # type: ignore[arg-type]
    assert reply == {"jsonrpc": "2.0", "id": 9, "method": "public/test", "params": {}}
    parser = DeribitParser([BUSY])
    assert parser.parse(heartbeat, 1) == [] and parser.test_requests == 1
    plain = b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"heartbeat"}}'
    assert heartbeat_reply(plain) is None and parser.parse(plain, 1) == []
    assert heartbeat_reply(DERIBIT_QUOTE.read_bytes()) is None


def test_heartbeats_are_requested_no_more_often_than_deribit_allows():
    assert orjson.loads(set_heartbeat(30))["params"] == {"interval": 30}
    with pytest.raises(ValueError, match="at least 10 s"):
        set_heartbeat(5)


def test_subscribing_asks_for_raw_trades_quotes_and_raw_books():
    channels = orjson.loads(subscribe(["BTC-PERPETUAL"]))["params"]["channels"]
    assert channels == ["trades.BTC-PERPETUAL.raw", "quote.BTC-PERPETUAL", "book.BTC-PERPETUAL.raw"]


def test_replies_are_silent_and_errors_are_quarantined(instruments):
    parser = DeribitParser(instruments)
    subscribed = received_frames(DERIBIT_SESSION)[0][1]
    assert b'"result"' in subscribed and parser.parse(subscribed, 1) == []
    error = b'{"jsonrpc":"2.0","id":3,"error":{"code":11050,"message":"bad_request"}}'
    (rejected,) = parser.parse(error, 1)
    assert rejected.reason == "exchange error: 11050 bad_request"
    assert parser.parse(b"[1]", 1)[0].reason == "not a json object"
    other = (
        b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"quote.ETH-X","data":{}}}'
    )
    assert parser.parse(other, 1)[0].reason == "symbol not subscribed: ETH-X"
