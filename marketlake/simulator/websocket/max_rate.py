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


def _templates(session: BinanceSession) -> list[tuple]:
    """Per subscribed symbol: (symbol, kinds, first id, trade, ticker, depth, update id)."""
    subs = session.subscriptions()
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
    return per_symbol


async def send_max_rate(session: BinanceSession) -> None:
    """Pre-encoded frames for all subscribed streams, written as fast as the socket drains.

    Trade ids continue the universe's sequence from now and stay contiguous; prices
    and sizes repeat (the benchmark measures landing, not the market).
    """
    transport = session.ws.transport
    per_symbol = _templates(session)
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


async def send_paced(session: BinanceSession, trades_per_s: float) -> None:
    """The max-rate sender's frames at `trades_per_s` trades per symbol, for soaks.

    Trade ids are a function of time since the simulator's first paced connection, shared
    by every connection: two connections open at once (a rollover) send the same ids at the
    same moments, as the exchange does, and a connection opened later continues the
    sequence instead of restarting it. Each trade carries a bookTicker; every 10th a depth.
    """
    transport = session.ws.transport
    per_symbol = _templates(session)
    sim = session.sim
    if sim.paced_origin is None:
        sim.paced_origin = (time.monotonic(), {entry[0]: entry[2] for entry in per_symbol})
    started, firsts = sim.paced_origin
    for symbol, _kinds, first, *_ in per_symbol:
        firsts.setdefault(symbol, first)

    def due(symbol: str) -> int:
        return firsts[symbol] + int((time.monotonic() - started) * trades_per_s)

    cursor = {symbol: due(symbol) for symbol, *_ in per_symbol}
    update_base = {entry[0]: entry[6] for entry in per_symbol}
    while True:
        await asyncio.sleep(0.005)
        if transport.is_closing():
            return
        ms = time.time_ns() // 1_000_000
        chunk: list[bytes] = []
        for symbol, kinds, _first, trade, ticker, depth, _u in per_symbol:
            end = due(symbol)
            for trade_id in range(cursor[symbol], end):
                update_id = update_base[symbol] + trade_id - firsts[symbol]
                if "trade" in kinds:
                    maker = b"true" if trade_id & 1 else b"false"
                    chunk.append(raw_frame(trade % (ms, trade_id, ms, maker)))
                if "bookTicker" in kinds:
                    chunk.append(raw_frame(ticker % update_id))
                if "depth" in kinds and trade_id % 10 == 0:
                    chunk.append(raw_frame(depth % update_id))
            cursor[symbol] = end
        if not chunk:
            continue
        try:
            transport.write(b"".join(chunk))
        except RuntimeError:  # the client closed while the chunk was being built
            return
        session.sim.stats.frames += len(chunk)
