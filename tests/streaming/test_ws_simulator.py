"""The websocket simulator on its own: the universe's trades, Binance's limits, replay."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from marketlake.simulator import data
from marketlake.simulator.data import SimConfig
from marketlake.simulator.websocket import WsFaults, WsSimulator, raw_frame

CONFIG = SimConfig(seed=3, trades_per_day=86_400 * 50, symbols=("BTCUSDT",))


def test_trades_continue_the_id_sequence_rest_and_the_archive_serve() -> None:
    with WsSimulator(CONFIG) as sim, connect(f"{sim.url}/stream?streams=btcusdt@trade") as ws:
        connected_us = sim.now_us()
        frames = [orjson.loads(ws.recv(timeout=5)) for _ in range(20)]
    trades = [f["data"] for f in frames]
    ids = [t["t"] for t in trades]
    assert ids == list(range(ids[0], ids[0] + 20))
    assert abs(ids[0] - (data.last_trade_id_at("BTCUSDT", connected_us, CONFIG) + 1)) <= 5
    truth = data.trades_between_ids("BTCUSDT", ids[0], ids[-1], CONFIG)
    assert [float(t["p"]) for t in trades] == truth["price"].to_list()
    assert [t["m"] for t in trades] == truth["is_buyer_maker"].to_list()
    assert [t["T"] for t in trades] == (truth["time"] // 1000).to_list()  # ms on the wire
    assert {f["stream"] for f in frames} == {"btcusdt@trade"}


def test_time_unit_microsecond_sends_the_archives_exact_times() -> None:
    url = "/stream?streams=btcusdt@trade&timeUnit=MICROSECOND"
    with WsSimulator(CONFIG) as sim, connect(sim.url + url) as ws:
        trades = [orjson.loads(ws.recv(timeout=5))["data"] for _ in range(5)]
    truth = data.trades_between_ids("BTCUSDT", trades[0]["t"], trades[-1]["t"], CONFIG)
    assert [t["T"] for t in trades] == truth["time"].to_list()


def test_a_server_shutdown_is_announced_then_the_connection_closed() -> None:
    faults = WsFaults(server_shutdown_after_s=0.1, shutdown_grace_s=0.3)
    with (
        WsSimulator(CONFIG, faults=faults) as sim,
        connect(f"{sim.url}/stream?streams=btcusdt@trade") as ws,
    ):
        notices = []
        with pytest.raises(ConnectionClosed):
            while True:
                frame = orjson.loads(ws.recv(timeout=5))
                if frame["stream"] == "!serverShutdown":
                    notices.append(frame["data"]["e"])
    assert notices == ["serverShutdown"]


def wait_for_close(ws, seconds: float = 60.0) -> ConnectionClosed:
    """Read until the server closes the connection (quiet streams just time out a read)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            ws.recv(timeout=1)
        except TimeoutError:
            continue
        except ConnectionClosed as closed:
            return closed
    raise AssertionError(f"the server did not close the connection within {seconds}s")


def test_more_than_1024_streams_are_refused() -> None:
    streams = [f"s{i}usdt@trade" for i in range(1025)]
    with WsSimulator(CONFIG) as sim, connect(f"{sim.url}/stream?streams=btcusdt@trade") as ws:
        ws.send(orjson.dumps({"method": "SUBSCRIBE", "params": streams, "id": 1}).decode())
        closed = wait_for_close(ws)
    assert closed.rcvd is not None and closed.rcvd.code == 1008


def test_more_than_5_incoming_messages_a_second_are_refused() -> None:
    with WsSimulator(CONFIG) as sim, connect(f"{sim.url}/stream?streams=btcusdt@trade") as ws:
        for n in range(6):
            ws.send(orjson.dumps({"method": "LIST_SUBSCRIPTIONS", "id": n}).decode())
        closed = wait_for_close(ws)
    assert closed.rcvd is not None and closed.rcvd.reason == "too many messages"
    assert sim.stats.refused == 1


def test_subscribe_is_answered_like_binance() -> None:
    with WsSimulator(CONFIG) as sim, connect(f"{sim.url}/stream?streams=btcusdt@trade") as ws:
        ws.send(b'{"method":"SUBSCRIBE","params":["btcusdt@bookTicker"],"id":7}'.decode())
        ws.send(b'{"method":"LIST_SUBSCRIPTIONS","id":8}'.decode())
        answers = []
        while len(answers) < 2:
            message = orjson.loads(ws.recv(timeout=5))
            if "id" in message:
                answers.append(message)
    assert answers == [
        {"result": None, "id": 7},
        {"result": ["btcusdt@trade", "btcusdt@bookTicker"], "id": 8},
    ]


def test_replay_serves_the_recorded_frames_verbatim(samples: Path) -> None:
    path = samples / "binance_ws/andrey_allData2.json"
    with WsSimulator(replay=path, replay_speed=None) as sim, connect(sim.url) as ws:
        frames = [ws.recv(timeout=5) for _ in range(3)]
    assert frames == path.read_text().splitlines()


def test_an_unknown_path_is_404() -> None:
    with WsSimulator(CONFIG) as sim, pytest.raises(InvalidStatus) as refused:
        connect(f"{sim.url}/nope")
    assert refused.value.response.status_code == 404


def test_raw_frames_use_the_three_length_encodings() -> None:
    assert raw_frame(b"x")[:2] == b"\x81\x01"
    assert raw_frame(b"x" * 200)[:4] == b"\x81\x7e\x00\xc8"
    assert raw_frame(b"x" * 70_000)[:2] == b"\x81\x7f"
