"""The simulator's OKX and Deribit websockets on their own, spoken to as a client would."""

from __future__ import annotations

import orjson
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from marketlake.exchanges.book import BOOK_CHECKSUM, BookEvent
from marketlake.exchanges.feed import Depth
from marketlake.exchanges.okx.websocket import OkxParser
from marketlake.simulator.data import SimConfig
from marketlake.simulator.websocket import WsFaults, WsSimulator

CONFIG = SimConfig(seed=3, trades_per_day=86_400 * 20, symbols=("BTC-USDT", "BTC-PERPETUAL"))


def test_okx_answers_each_subscription_ping_and_an_unknown_channel_as_okx_does() -> None:
    with WsSimulator(CONFIG) as sim, connect(sim.okx_url) as ws:
        args = [{"channel": "trades", "instId": "BTC-USDT"}, {"channel": "x", "instId": "BTC-USDT"}]
        ws.send(orjson.dumps({"op": "subscribe", "args": args}).decode())
        ws.send("ping")
        answers = []
        while len(answers) < 3:
            frame = ws.recv(timeout=5)
            if frame == "pong" or "event" in orjson.loads(frame):
                answers.append(frame if frame == "pong" else orjson.loads(frame))
    assert answers[0] == {"event": "subscribe", "arg": args[0]}
    assert answers[1]["event"] == "error" and answers[1]["code"] == "60018"
    assert answers[2] == "pong"


def okx_book_records(faults: WsFaults | None, frames: int) -> list:
    parser = OkxParser(["BTC-USDT"])
    records: list = []
    with WsSimulator(CONFIG, faults=faults) as sim, connect(sim.okx_url) as ws:
        arg = {"channel": "books", "instId": "BTC-USDT"}
        ws.send(orjson.dumps({"op": "subscribe", "args": [arg]}).decode())
        pushes = 0
        while pushes < frames:
            frame = ws.recv(timeout=5)
            if "action" in frame:
                pushes += 1
                records += parser.parse(frame, 0)
    return records


def test_okx_books_chain_by_seq_id_and_every_checksum_verifies_in_the_venues_own_text() -> None:
    records = okx_book_records(None, 6)
    assert [type(r) for r in records] == [Depth] * 6
    assert [r.last_update_id for r in records] == sorted({r.last_update_id for r in records})


def test_okx_a_spoiled_checksum_is_sent_once_on_a_book_that_is_otherwise_right() -> None:
    records = okx_book_records(WsFaults(bad_book_checksums=1), 4)
    [event] = [r for r in records if type(r) is BookEvent]
    assert event.kind == BOOK_CHECKSUM and abs(int(event.expected) - int(event.got)) == 1


def rpc(ws, method: str, params: dict, request_id: int) -> dict:
    ws.send(orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}))
    while True:
        message = orjson.loads(ws.recv(timeout=5))
        if message.get("id") == request_id:
            return message


def test_deribit_replies_like_deribit_and_refuses_a_heartbeat_under_ten_seconds() -> None:
    with WsSimulator(CONFIG) as sim, connect(sim.deribit_url) as ws:
        channels = ["book.BTC-PERPETUAL.raw", "ticker.BTC-PERPETUAL.raw"]
        reply = rpc(ws, "public/subscribe", {"channels": channels}, 7)
        refused = rpc(ws, "public/set_heartbeat", {"interval": 5}, 8)
    assert reply["result"] == ["book.BTC-PERPETUAL.raw"] and reply["testnet"] is False
    assert reply["usIn"] <= reply["usOut"] and reply["usDiff"] == reply["usOut"] - reply["usIn"]
    assert refused["error"]["message"] == "invalid_arguments"


def test_deribit_closes_a_connection_that_leaves_a_test_request_unanswered() -> None:
    with (
        WsSimulator(CONFIG, deribit_heartbeat_s=0.2) as sim,
        connect(sim.deribit_url) as ws,
    ):
        assert rpc(ws, "public/set_heartbeat", {"interval": 10}, 1)["result"] == "ok"
        beat = orjson.loads(ws.recv(timeout=5))
        assert beat == {"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}}
        assert rpc(ws, "public/test", {}, 2)["result"]["version"]
        assert orjson.loads(ws.recv(timeout=5))["method"] == "heartbeat"  # answered: goes on
        with pytest.raises(ConnectionClosed):  # this one is left unanswered
            while True:
                ws.recv(timeout=5)
        assert sim.stats.heartbeat_timeouts == 1


@pytest.mark.parametrize("exchange", ["okx", "deribit"])
def test_max_rate_frames_keep_a_verifiable_book_for_the_throughput_benchmark(exchange: str) -> None:
    from marketlake.exchanges.feed import feed_for

    instrument = "BTC-USDT" if exchange == "okx" else "BTC-PERPETUAL"
    feed = feed_for(exchange)
    [shard] = feed.shards("", [instrument])
    parser = feed.parser([instrument])
    records: list = []
    with WsSimulator(CONFIG, max_rate=True) as sim:
        url = sim.okx_url if exchange == "okx" else sim.deribit_url
        with connect(url, max_size=None, close_timeout=0.5) as ws:  # it writes past a close
            for message in shard.subscribe:
                ws.send(message.decode())
            for _ in range(400):
                records += parser.parse(ws.recv(timeout=5), 0)
    kinds = {type(r).__name__ for r in records}
    assert {"Trade", "Quote", "Depth"} <= kinds and not kinds & {"BookEvent", "Reject"}
