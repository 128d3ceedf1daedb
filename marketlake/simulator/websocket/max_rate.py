"""The max-rate sender: pre-encoded Binance frames written as fast as the socket drains.

For throughput benchmarks of the lander: the frames are built once per symbol and only
their ids and times are filled in per frame, then written straight to the transport as
raw RFC 6455 frames, bypassing the websockets library's per-message work.
"""

from __future__ import annotations

import asyncio
import time

from marketlake.simulator import book, data
from marketlake.simulator.websocket.binance import BinanceSession, wire


def raw_frame(payload: bytes) -> bytes:
    """An unmasked server text frame (RFC 6455) around ``payload``."""
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload


async def send_max_rate(session: BinanceSession) -> None:
    """Pre-encoded frames for all subscribed streams, written as fast as the socket drains.

    Trade ids continue the universe's sequence from now and stay contiguous; prices
    and sizes repeat (the benchmark measures landing, not the market).
    """
    subs = session.subscriptions()
    transport = session.ws.transport
    now = session.sim.now_us()
    cfg = session.cfg
    per_symbol = []
    for symbol, (name, kinds) in subs.items():
        quote = book.quote_at(symbol, now, cfg)
        depth = session.depth_frame(name, symbol, book.depth_at(symbol, now, cfg))
        head, _, tail = depth.partition(b'"lastUpdateId":')
        tail = tail[tail.index(b",") :]
        per_symbol.append(
            (
                symbol,
                kinds,
                data.last_trade_id_at(symbol, now, cfg) + 1,
                (
                    b'{"stream":"%s@trade","data":{"e":"trade","E":%%d,"s":"%s","t":%%d,'
                    b'"p":"%s","q":"0.00100000","T":%%d,"m":%%s,"M":true}}'
                    % (name.encode(), symbol.encode(), wire(quote.ask_price).encode())
                ),
                (
                    b'{"stream":"%s@bookTicker","data":{"u":%%d,"s":"%s","b":"%s","B":"%s",'
                    b'"a":"%s","A":"%s"}}'
                    % (
                        name.encode(),
                        symbol.encode(),
                        wire(quote.bid_price).encode(),
                        wire(quote.bid_qty).encode(),
                        wire(quote.ask_price).encode(),
                        wire(quote.ask_qty).encode(),
                    )
                ),
                head + b'"lastUpdateId":%d' + tail,
                quote.update_id,
            )
        )
    ids = {symbol: first for symbol, _, first, *_ in per_symbol}
    update_ids = {entry[0]: entry[6] for entry in per_symbol}
    frames_per_chunk = 600
    counter = 0
    while True:
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() > 1 << 20:
            await asyncio.sleep(0.0005)
            continue
        ms = time.time_ns() // 1_000_000
        chunk: list[bytes] = []
        while len(chunk) < frames_per_chunk:
            for symbol, kinds, _first, trade, ticker, depth, _u in per_symbol:
                counter += 1
                if "trade" in kinds:
                    trade_id = ids[symbol]
                    ids[symbol] = trade_id + 1
                    chunk.append(
                        raw_frame(trade % (ms, trade_id, ms, b"true" if trade_id & 1 else b"false"))
                    )
                update_ids[symbol] += 1
                if "bookTicker" in kinds:
                    chunk.append(raw_frame(ticker % update_ids[symbol]))
                if "depth" in kinds and counter % 10 == 0:
                    chunk.append(raw_frame(depth % update_ids[symbol]))
        if transport.is_closing():
            return
        try:
            transport.write(b"".join(chunk))
        except RuntimeError:  # the client closed while the chunk was being built
            return
        session.sim.stats.frames += len(chunk)
        await asyncio.sleep(0)
