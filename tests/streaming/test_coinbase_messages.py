"""Every recorded Coinbase Advanced Trade frame in tests/data/real parses to the exact record.

The recording (cryptofeed v3, 2026-08-09) has market_trades snapshots and updates, ticker
snapshots and updates, level2 updates (its two level2 snapshots were over 100 KB and are
not in the sample), candles, heartbeats and subscriptions.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from marketlake.exchanges.coinbase.book import Book
from marketlake.exchanges.coinbase.websocket import CoinbaseFeed, CoinbaseParser, rfc3339_us
from marketlake.exchanges.feed import Depth, Quote, Reject, Resync, Trade
from marketlake.exchanges.recording import read_recording

V3 = "coinbase_ws/cryptofeed_v3_COINBASE.advanced_trade.2026-08-09.head.jsonl"
PRODUCTS = ["BTC-USD", "ETH-USD"]
RECEIVED = 1_786_309_600_000_000


def us(text: str) -> int:
    """An independent RFC 3339 reading (datetime), truncated to µs like the parser."""
    head, _, fraction = text.rstrip("Z").partition(".")
    moment = dt.datetime.fromisoformat(head).replace(tzinfo=dt.UTC)
    whole = (moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(seconds=1)
    return whole * 1_000_000 + int((fraction + "000000")[:6])


@pytest.fixture
def parsed(samples: Path) -> list[tuple[int, dict, list]]:
    parser = CoinbaseFeed().parser(PRODUCTS)
    out = []
    for recorded in read_recording(samples / V3):
        assert recorded.received_at_us is not None
        records = parser.parse(recorded.raw, recorded.received_at_us)
        out.append((recorded.received_at_us, json.loads(recorded.raw), records))
    return out


def test_the_recording_holds_161_received_frames(parsed: list) -> None:
    assert len(parsed) == 161


def test_market_trades_snapshot_is_landed_in_trade_id_order(parsed: list) -> None:
    received, _, records = parsed[0]
    assert received == 1786309548629008
    assert len(records) == 100
    assert records[0] == Trade(
        "BTC-USD",
        1068571991,
        65090.99,
        0.00310335,
        us("2026-08-09T21:04:35.345704Z"),
        True,
        received,
    )
    # Printed at the best ask (65083.67) with side SELL: the maker sold, the buyer took.
    assert records[-1] == Trade(
        "BTC-USD",
        1068572090,
        65083.67,
        0.002186,
        us("2026-08-09T21:05:42.514318Z"),
        False,
        received,
    )
    assert [r.trade_id for r in records] == list(range(1068571991, 1068572091))


def test_market_trades_update_with_two_trades(parsed: list) -> None:
    [(received, _, records)] = [p for p in parsed if p[1].get("sequence_num") == 136]
    assert records == [
        Trade(
            "BTC-USD",
            1068572095,
            65083.67,
            0.00322434,
            us("2026-08-09T21:05:51.376358Z"),
            False,
            received,
        ),
        Trade(
            "BTC-USD",
            1068572096,
            65083.66,
            0.00100346,
            us("2026-08-09T21:05:51.426861Z"),
            True,
            received,
        ),
    ]


def test_every_trade_matches_an_independent_reading(parsed: list) -> None:
    seen = 0
    for received, frame, records in parsed:
        if frame["channel"] != "market_trades":
            continue
        expected = sorted(
            (
                Trade(
                    t["product_id"],
                    int(t["trade_id"]),
                    float(t["price"]),
                    float(t["size"]),
                    us(t["time"]),
                    t["side"] == "BUY",  # Coinbase's side is the maker's
                    received,
                )
                for event in frame["events"]
                for t in event["trades"]
            ),
            key=lambda trade: trade.trade_id,
        )
        assert records == expected
        seen += len(records)
    assert seen == 208  # 2 snapshots of 100 + 8 live trades


def test_side_is_the_makers_side_as_the_recorded_quotes_show(parsed: list) -> None:
    """The recording itself settles the semantics: SELL trades print at the best ask."""
    best: dict[str, Quote] = {}
    checked = 0
    for _, frame, records in parsed:
        for record in records:
            if isinstance(record, Quote):
                best[record.symbol] = record
            elif (
                isinstance(record, Trade)
                and record.symbol in best
                and frame["events"][0]["type"] == "update"
            ):
                quote = best[record.symbol]
                if record.is_buyer_maker:
                    assert record.price == quote.bid_price
                else:
                    assert record.price == quote.ask_price
                checked += 1
    assert checked == 8


def test_ticker_snapshot_and_update_are_quotes_at_the_frame_timestamp(parsed: list) -> None:
    _, _, records = parsed[6]
    assert records == [
        Quote(
            "BTC-USD",
            us("2026-08-09T21:05:48.229198Z"),  # the frame's ns timestamp, truncated
            1786309548642822,
            None,
            65083.66,
            0.20371215,
            65083.67,
            0.24290402,
        )
    ]
    quotes = [
        (received, frame, r) for received, frame, rs in parsed for r in rs if isinstance(r, Quote)
    ]
    assert len(quotes) == 23
    for received, frame, quote in quotes:
        [ticker] = [t for e in frame["events"] for t in e["tickers"]]
        assert quote == Quote(
            ticker["product_id"],
            us(frame["timestamp"]),
            received,
            None,
            float(ticker["best_bid"]),
            float(ticker["best_bid_quantity"]),
            float(ticker["best_ask"]),
            float(ticker["best_ask_quantity"]),
        )


def test_lost_frames_are_seen_in_sequence_num_and_ask_for_a_resync(parsed: list) -> None:
    # The sample lacks the two level2 snapshots (sequence_num 13 and 21).
    resyncs = [
        (frame["sequence_num"], r) for _, frame, rs in parsed for r in rs if isinstance(r, Resync)
    ]
    assert resyncs == [
        (14, Resync("sequence_num jumped from 12 to 14")),
        (22, Resync("sequence_num jumped from 20 to 22")),
    ]


def test_level2_updates_without_a_snapshot_make_no_depth(samples: Path) -> None:
    parser = CoinbaseParser(PRODUCTS)
    records = [r for rec in read_recording(samples / V3) for r in parser.parse(rec.raw, RECEIVED)]
    assert not [r for r in records if isinstance(r, Depth)]
    assert parser.updates_before_snapshot == 117


def test_channels_not_landed_are_quarantined_and_control_frames_ignored(parsed: list) -> None:
    outcome = {}
    for _, frame, records in parsed:
        kinds = tuple(sorted({type(r).__name__ for r in records if not isinstance(r, Resync)}))
        outcome.setdefault(frame["channel"], set()).add(kinds)
    assert outcome["candles"] == {("Reject",)}
    assert outcome["heartbeats"] == {()}
    assert outcome["subscriptions"] == {()}
    candles = [r for _, f, rs in parsed if f["channel"] == "candles" for r in rs]
    assert {r.reason for r in candles} == {"unsupported channel 'candles'"}


def l2_frame(sequence: int, kind: str, updates: list[tuple[str, str, str]], when: str) -> bytes:
    return json.dumps(
        {
            "channel": "l2_data",
            "timestamp": when,
            "sequence_num": sequence,
            "events": [
                {
                    "type": kind,
                    "product_id": "BTC-USD",
                    "updates": [
                        {"side": s, "event_time": when, "price_level": p, "new_quantity": q}
                        for s, p, q in updates
                    ],
                }
            ],
        }
    ).encode()


def test_real_level2_updates_on_a_snapshot_keep_an_exact_top_20(samples: Path) -> None:
    """A synthetic snapshot, then every recorded BTC-USD update, against a plain dict book."""
    snapshot = [("bid", f"{65000 - i * 0.5:.2f}", "1.5") for i in range(60)]
    snapshot += [("offer", f"{65083.67 + i * 0.5:.2f}", "2.5") for i in range(60)]
    parser = CoinbaseParser(["BTC-USD"], depth=20, depth_interval_us=0)
    when = "2026-08-09T21:05:48.300000Z"
    [depth] = parser.parse(l2_frame(0, "snapshot", snapshot, when), RECEIVED)
    bids = {float(p): float(q) for s, p, q in snapshot if s == "bid"}
    asks = {float(p): float(q) for s, p, q in snapshot if s == "offer"}
    assert depth.bid_prices == sorted(bids, reverse=True)[:20]
    sequence = 0
    for recorded in read_recording(samples / V3):
        frame = json.loads(recorded.raw)
        if frame["channel"] != "l2_data" or frame["events"][0]["product_id"] != "BTC-USD":
            continue
        sequence += 1
        frame["sequence_num"] = sequence
        records = parser.parse(json.dumps(frame), RECEIVED + sequence)
        for update in frame["events"][0]["updates"]:
            side = bids if update["side"] == "bid" else asks
            price, qty = float(update["price_level"]), float(update["new_quantity"])
            if qty == 0:
                side.pop(price, None)
            else:
                side[price] = qty
        [depth] = records
        top_bids = sorted(bids, reverse=True)[:20]
        top_asks = sorted(asks)[:20]
        assert depth == Depth(
            "BTC-USD",
            us(frame["events"][0]["updates"][-1]["event_time"]),
            RECEIVED + sequence,
            None,
            top_bids,
            [bids[p] for p in top_bids],
            top_asks,
            [asks[p] for p in top_asks],
        )
    assert sequence > 50


def test_depth_snapshots_are_rate_limited_per_product() -> None:
    parser = CoinbaseParser(["BTC-USD"], depth=5, depth_interval_us=100_000)
    when = "2026-08-09T21:05:48.300000Z"
    emitted = []
    for n in range(10):
        frame = l2_frame(n, "snapshot" if n == 0 else "update", [("bid", f"{100 + n}", "1")], when)
        emitted += [r for r in parser.parse(frame, RECEIVED + n * 30_000) if isinstance(r, Depth)]
    assert [d.received_at_us - RECEIVED for d in emitted] == [0, 120_000, 240_000]


def test_book_removes_levels_at_zero_and_ignores_unknown_removals() -> None:
    book = Book()
    book.bids.set(10.0, 1.0)
    book.bids.set(11.0, 2.0)
    book.bids.set(12.0, 0.0)  # never there
    book.bids.set(10.0, 0.0)
    assert book.bids.top(5) == ([11.0], [2.0])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-08-09T21:05:48.228568804Z", 1786309548228568),
        ("2026-08-09T21:05:38.50436Z", 1786309538504360),
        ("2026-08-09T21:05:49.25328358Z", 1786309549253283),
        ("2026-08-09T21:05:49Z", 1786309549000000),
    ],
)
def test_rfc3339_times_truncate_to_microseconds(text: str, expected: int) -> None:
    assert rfc3339_us(text) == expected == us(text)


@pytest.mark.parametrize(
    "text", ["2026-08-09 21:05:48Z", "2026-08-09T21:05:48+01:00", "2026-08-09T25:00:00Z", 5]
)
def test_rfc3339_refuses_other_forms(text: object) -> None:
    with pytest.raises(ValueError):
        rfc3339_us(text)


TRADE = {
    "product_id": "BTC-USD",
    "trade_id": "1",
    "price": "10",
    "size": "1",
    "time": "2026-08-09T21:05:48.1Z",
    "side": "BUY",
}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"price": "-1"}, "non-positive price"),
        ({"size": "0"}, "non-positive qty"),
        ({"side": "buy"}, "mistyped field 'side': 'buy'"),
        ({"trade_id": "x1"}, "mistyped field 'trade_id': not an integer"),
        ({"time": "yesterday"}, "mistyped field 'time': not an RFC 3339 UTC time"),
        ({"product_id": "DOGE-USD"}, "symbol not subscribed: DOGE-USD"),
        ({"price": 10}, "mistyped field 'price': expected str"),
    ],
)
def test_a_bad_trade_is_refused_alone_and_the_rest_of_the_frame_lands(
    change: dict, reason: str
) -> None:
    bad = {**TRADE, **change, "trade_id": change.get("trade_id", "2")}
    frame = {
        "channel": "market_trades",
        "timestamp": "2026-08-09T21:05:48.2Z",
        "sequence_num": 0,
        "events": [{"type": "update", "trades": [TRADE, bad]}],
    }
    reject, trade = CoinbaseParser(["BTC-USD"]).parse(json.dumps(frame), RECEIVED)
    assert isinstance(reject, Reject) and reject.reason == reason
    assert json.loads(reject.payload) == bad
    assert trade == Trade("BTC-USD", 1, 10.0, 1.0, 1786309548100000, True, RECEIVED)


def test_legacy_coinbase_exchange_frames_are_refused_by_name(samples: Path) -> None:
    parser = CoinbaseParser(["SKL-USD", "BAND-GBP"])
    path = samples / "coinbase_ws/cryptofeed_COINBASE.ws.28.0.head.log"
    reasons = {r.reason for rec in read_recording(path) for r in parser.parse(rec.raw, RECEIVED)}
    assert reasons == {
        f"Coinbase Exchange feed message ({kind}), not Advanced Trade"
        for kind in ("l2update", "ticker", "match", "last_match", "snapshot", "subscriptions")
    }
