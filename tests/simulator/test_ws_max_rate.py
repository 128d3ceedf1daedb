"""The max-rate sender: what a throughput benchmark receives is still a valid Binance stream."""

from __future__ import annotations

import orjson
from websockets.sync.client import connect

from marketlake.simulator import book, data
from marketlake.simulator.data import SimConfig
from marketlake.simulator.websocket import WsSimulator

CONFIG = SimConfig(seed=3, trades_per_day=20_000, symbols=("BTCUSDT",))
STREAMS = "btcusdt@trade/btcusdt@bookTicker/btcusdt@depth20@100ms"


def test_max_rate_frames_are_binance_frames_with_contiguous_ids_after_the_latest_trade() -> None:
    with WsSimulator(CONFIG, max_rate=True) as sim:
        connected_us = sim.now_us()
        # The sender writes past a client's close frame, so don't wait long for the reply.
        url = f"{sim.url}/stream?streams={STREAMS}"
        with connect(url, max_size=None, close_timeout=0.5) as ws:
            frames = [orjson.loads(ws.recv(timeout=5)) for _ in range(3000)]
    by_stream: dict[str, list[dict]] = {}
    for frame in frames:
        by_stream.setdefault(frame["stream"], []).append(frame["data"])
    assert set(by_stream) == {"btcusdt@trade", "btcusdt@bookTicker", "btcusdt@depth20@100ms"}

    ids = [trade["t"] for trade in by_stream["btcusdt@trade"]]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert abs(ids[0] - (data.last_trade_id_at("BTCUSDT", connected_us, CONFIG) + 1)) <= 5
    assert all(
        trade["s"] == "BTCUSDT" and float(trade["q"]) > 0 for trade in by_stream["btcusdt@trade"]
    )

    update_ids = [ticker["u"] for ticker in by_stream["btcusdt@bookTicker"]]
    assert update_ids == sorted(set(update_ids))  # the book only moves forward
    depth = by_stream["btcusdt@depth20@100ms"][0]
    assert len(depth["bids"]) == len(depth["asks"]) == 20
    quote = book.quote_at("BTCUSDT", connected_us, CONFIG)
    assert float(depth["bids"][0][0]) < float(depth["asks"][0][0])
    assert abs(float(depth["bids"][0][0]) - quote.bid_price) / quote.bid_price < 0.01
