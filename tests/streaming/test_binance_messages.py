"""Every recorded Binance websocket frame in tests/data/real parses to the exact record.

Exact literals are written out for the single-message files and for the first and last
frame of the longer recordings; every other frame is checked against an independent
decoding (the standard library's json, the field mapping of the Binance docs written out
again), so a parser bug can't be copied into the expectation.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from marketlake.exchanges.binance.websocket import BinanceFeed, BinanceParser
from marketlake.exchanges.feed import Depth, Quote, Reject, Resync, Trade
from marketlake.exchanges.recording import read_recording, seconds_to_us
from marketlake.schemas import QUARANTINE_PAYLOAD_LIMIT

RECEIVED = 1_700_000_000_123_456
LOG_SYMBOLS = ["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"]


def parse_file(path: Path, symbols: list[str]) -> list[tuple[int | None, list]]:
    parser = BinanceFeed().parser(symbols)
    return [
        (r.received_at_us, parser.parse(r.raw, r.received_at_us or RECEIVED))
        for r in read_recording(path)
    ]


def only(path: Path, symbols: list[str]) -> list:
    [(_, records)] = parse_file(path, symbols)
    return records


def test_current_spot_trade_without_order_ids(samples: Path) -> None:
    records = only(samples / "binance_ws/andrey_trade.json", ["BTCUSDT"])
    # T=1762578805372 ms is the trade time (E, the event time, is 1 ms later).
    assert records == [
        Trade("BTCUSDT", 5455447976, 102571.17, 0.001, 1762578805372000, True, RECEIVED)
    ]


def test_older_spot_trade_with_buyer_and_seller_order_ids(samples: Path) -> None:
    records = only(samples / "binance_ws/nautilus_ws_spot_trade.json", ["ETHUSDT"])
    assert records == [
        Trade("ETHUSDT", 705291099, 4149.74, 0.4387, 1639351062243000, True, RECEIVED)
    ]


def test_partial_book_depth20_takes_symbol_from_stream_and_receive_time_as_ts(
    samples: Path,
) -> None:
    [depth] = only(samples / "binance_ws/andrey_bookDepthSnapshot.json", ["BTCUSDT"])
    assert isinstance(depth, Depth)
    assert (depth.symbol, depth.ts_us, depth.received_at_us, depth.last_update_id) == (
        "BTCUSDT",
        RECEIVED,
        RECEIVED,
        80089389252,
    )
    assert depth.bid_prices[:2] == [102571.17, 102571.16] and depth.bid_prices[-1] == 102564.34
    assert depth.bid_qtys[:2] == [0.3898, 0.00309] and depth.bid_qtys[-1] == 0.03763
    assert depth.ask_prices[:2] == [102571.18, 102571.23] and depth.ask_prices[-1] == 102577.04
    assert depth.ask_qtys[:2] == [5.54123, 0.00012] and depth.ask_qtys[-1] == 0.00005
    raw = json.loads((samples / "binance_ws/andrey_bookDepthSnapshot.json").read_text())["data"]
    assert depth.bid_prices == [float(p) for p, _ in raw["bids"]]
    assert depth.bid_qtys == [float(q) for _, q in raw["bids"]]
    assert depth.ask_prices == [float(p) for p, _ in raw["asks"]]
    assert depth.ask_qtys == [float(q) for _, q in raw["asks"]]
    assert len(depth.bid_prices) == len(depth.ask_prices) == 20


def test_book_tickers_land_and_diff_depth_is_refused(samples: Path) -> None:
    records = only_lines(samples / "binance_ws/andrey_allData2.json", ["BTCUSDT"])
    first, refused, last = records
    assert first == [
        Quote("BTCUSDT", RECEIVED, RECEIVED, 80630992451, 95794.61, 0.41915, 95794.62, 2.20768)
    ]
    assert last == [
        Quote("BTCUSDT", RECEIVED, RECEIVED, 80630992453, 95794.61, 0.41915, 95794.62, 2.20762)
    ]
    [reject] = refused
    assert isinstance(reject, Reject)
    assert (reject.reason, reject.symbol) == ("unknown stream 'btcusdt@depth@100ms'", "BTCUSDT")
    assert len(reject.payload) == QUARANTINE_PAYLOAD_LIMIT  # a 7 kB frame, cut to the limit
    assert reject.payload.startswith('{"stream":"btcusdt@depth@100ms"')


def only_lines(path: Path, symbols: list[str]) -> list[list]:
    return [records for _, records in parse_file(path, symbols)]


def test_agg_trades_are_refused_not_mistaken_for_trades(samples: Path) -> None:
    [reject] = only(samples / "binance_ws/andrey_aggTrade.json", ["BTCUSDT"])
    assert reject.reason == "unknown stream 'btcusdt@aggTrade'"


def test_every_diff_depth_frame_is_refused_with_its_symbol(samples: Path) -> None:
    frames = only_lines(samples / "binance_ws/andrey_depth.head425.jsonl", ["BTCUSDT"])
    assert len(frames) == 425
    assert {(r.reason, r.symbol) for [r] in frames} == {
        ("unknown stream 'btcusdt@depth@100ms'", "BTCUSDT")
    }


def expected_book_ticker(frame: dict, received_at_us: int) -> Quote:
    data = frame["data"]
    return Quote(
        data["s"],
        received_at_us,
        received_at_us,
        data["u"],
        float(data["b"]),
        float(data["B"]),
        float(data["a"]),
        float(data["A"]),
    )


def test_cryptofeed_recording_every_frame(samples: Path) -> None:
    path = samples / "binance_ws/cryptofeed_BINANCE.ws.1.0.log"
    parsed = parse_file(path, LOG_SYMBOLS)
    assert len(parsed) == 265
    first_quote = next(records for _, records in parsed if isinstance(records[0], Quote))
    assert first_quote == [
        Quote(
            "NKNUSDT", 1633998513377805, 1633998513377805, 499869768, 0.3521, 672.0, 0.3526, 3199.0
        )
    ]
    last_quote = [records for _, records in parsed if isinstance(records[0], Quote)][-1]
    assert last_quote == [
        Quote(
            "NKNUSDT", 1633998540250894, 1633998540250894, 499870151, 0.3527, 9602.0, 0.3531, 152.0
        )
    ]
    lines = [line for line in path.read_text().splitlines() if line[:1].isdigit()]
    kinds: Counter[str] = Counter()
    for line, (received, records) in zip(lines, parsed, strict=True):
        stamp, _, text = line.partition(": ")
        frame = json.loads(text)
        assert received == seconds_to_us(stamp)
        channel = frame["stream"].split("@", 1)[1]
        kinds[channel] += 1
        if channel == "bookTicker":
            assert records == [expected_book_ticker(frame, received)]
        else:
            [reject] = records
            assert reject.reason == f"unknown stream {frame['stream']!r}"
            assert reject.symbol == frame["data"]["s"]
            assert reject.payload == text
    assert kinds == {"depth@100ms": 177, "bookTicker": 84, "aggTrade": 2, "kline_1m": 2}


def test_receive_stamps_are_rounded_to_the_nearest_microsecond() -> None:
    assert seconds_to_us("1633998512.0633569") == 1633998512063357
    assert seconds_to_us("1633998512.86375") == 1633998512863750
    assert seconds_to_us("1786309548.6290078") == 1786309548629008


MICROSECOND_TRADE = (
    b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1762578805373001,"s":"BTCUSDT",'
    b'"t":5455447976,"p":"102571.17000000","q":"0.00100000","T":1762578805372123,'
    b'"m":false,"M":true}}'
)


def test_trade_time_unit_is_detected_not_assumed() -> None:
    # A connection opened with timeUnit=MICROSECOND sends 16-digit times.
    [trade] = BinanceParser(["BTCUSDT"]).parse(MICROSECOND_TRADE, RECEIVED)
    assert trade == Trade(
        "BTCUSDT", 5455447976, 102571.17, 0.001, 1762578805372123, False, RECEIVED
    )


def test_a_server_shutdown_notice_asks_for_a_rollover() -> None:
    frame = b'{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1770123456789}}'
    assert BinanceParser(["BTCUSDT"]).parse(frame, RECEIVED) == [
        Resync("server shutdown announced", rollover=True)
    ]


def test_subscribe_answers_are_not_data() -> None:
    assert BinanceParser(["BTCUSDT"]).parse(b'{"result":null,"id":1}', RECEIVED) == []


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"not json", "not json"),
        (b"[1, 2]", "not a json object"),
        (b'{"data": {}}', "not a combined-stream envelope"),
        (b'{"stream":"btcusdt@kline_1m","data":{}}', "unknown stream 'btcusdt@kline_1m'"),
        (
            MICROSECOND_TRADE.replace(b"btcusdt@", b"ethusdt@").replace(b'"BTCUSDT"', b'"ETHUSDT"'),
            "symbol not subscribed: ETHUSDT",
        ),
        (MICROSECOND_TRADE.replace(b'"q":"0.00100000",', b""), "missing field 'q'"),
        (
            MICROSECOND_TRADE.replace(b'"t":5455447976', b'"t":"5455447976"'),
            "mistyped field 't': expected int",
        ),
        (
            MICROSECOND_TRADE.replace(b'"p":"102571.17000000"', b'"p":102571.17'),
            "mistyped field 'p': expected str",
        ),
        (
            MICROSECOND_TRADE.replace(b'"p":"102571.17000000"', b'"p":"abc"'),
            "mistyped field 'p': not a decimal number",
        ),
        (
            MICROSECOND_TRADE.replace(b'"p":"102571.17000000"', b'"p":"0.00000000"'),
            "non-positive price",
        ),
        (MICROSECOND_TRADE.replace(b'"p":"102571.17000000"', b'"p":"NaN"'), "non-positive price"),
        (
            MICROSECOND_TRADE.replace(b'"q":"0.00100000"', b'"q":"-1.00000000"'),
            "non-positive qty",
        ),
        (
            MICROSECOND_TRADE.replace(b'"m":false', b'"m":"false"'),
            "mistyped field 'm': expected bool",
        ),
        (
            MICROSECOND_TRADE.replace(b'"s":"BTCUSDT"', b'"s":"ETHUSDT"'),
            "symbol 'ETHUSDT' does not match stream BTCUSDT",
        ),
        (
            b'{"stream":"btcusdt@depth20@100ms","data":{"lastUpdateId":1,"bids":[["1"]],"asks":[]}}',
            "mistyped field 'bids': expected [price, qty] pairs",
        ),
        (
            b'{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"1","B":"1","a":"0","A":"1"}}',
            "non-positive price",
        ),
    ],
)
def test_bad_frames_are_refused_with_a_reason(frame: bytes, reason: str) -> None:
    [reject] = BinanceParser(["BTCUSDT"]).parse(frame, RECEIVED)
    assert isinstance(reject, Reject)
    assert reject.reason == reason
    assert reject.payload == frame.decode()
    assert reject.received_at_us == RECEIVED
