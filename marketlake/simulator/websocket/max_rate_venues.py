"""Max-rate senders for OKX and Deribit: pre-encoded frames as fast as the socket drains.

For the lander's throughput per venue (``python -m streaming.benchmark throughput
--exchange okx``). As for Binance (max_rate.py), each trade goes with a best bid/ask, and
every 10th with a book update; only ids and times are filled in per frame. The books stay
*verifiable*: after the real snapshot, updates alternate the best ask's size between two
values, each update chaining on the previous id (OKX ``prevSeqId``, Deribit
``prev_change_id``) and, for OKX, carrying the checksum of the book it leaves, so the lander
does its full book work (apply, verify, top 20) on every one.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import orjson

from marketlake.simulator import book, data
from marketlake.simulator.websocket.l2 import best_first, levels_at, number
from marketlake.simulator.websocket.max_rate import raw_frame
from marketlake.simulator.websocket.okx import book_level, okx_checksum

if TYPE_CHECKING:
    from marketlake.simulator.websocket.deribit import DeribitSession
    from marketlake.simulator.websocket.okx import OkxSession

_CHUNK = 600


async def _blast(session: OkxSession | DeribitSession, frames) -> None:
    """Write ``frames()`` chunks until the client goes away, minding the write buffer."""
    transport = session.ws.transport
    while True:
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() > 1 << 20:
            await asyncio.sleep(0.0005)
            continue
        chunk = frames()
        try:
            transport.write(b"".join(raw_frame(f) for f in chunk))
        except RuntimeError:  # the client closed while the chunk was being built
            return
        session.sim.stats.frames += len(chunk)
        await asyncio.sleep(0)


async def _subscribed(session: OkxSession | DeribitSession, ready) -> None:
    """Answer requests until ``ready()`` (the subscriptions are in)."""
    while not ready():
        await asyncio.sleep(0.01)
        while not session.requests.empty():
            await session.answer(session.requests.get_nowait())


async def send_max_rate_okx(session: OkxSession) -> None:
    await _subscribed(session, lambda: bool(session.subscribed["books"]))
    sim, cfg = session.sim, session.cfg
    now = sim.now_us() // 1000 * 1000
    per_inst = []
    for inst in session.subscribed["books"]:
        bids, asks = levels_at(inst, now, cfg, sim.book_levels)
        seq = int(book.update_id_at(inst, now))
        bid_levels, ask_levels = best_first(bids, True), best_first(asks, False)
        snapshot = {
            "asks": [book_level(p, q) for p, q in ask_levels],
            "bids": [book_level(p, q) for p, q in bid_levels],
            "ts": str(now // 1000),
            "checksum": okx_checksum(bid_levels, ask_levels),
            "prevSeqId": -1,
            "seqId": seq,
        }
        push = {"arg": {"channel": "books", "instId": inst}, "action": "snapshot"}
        await session.ws.send(orjson.dumps({**push, "data": [snapshot]}), text=True)
        best_price, size_a = ask_levels[0]
        size_b = size_a + 0.001
        other = [(best_price, size_b), *ask_levels[1:]]
        sums = (okx_checksum(bid_levels, other), okx_checksum(bid_levels, ask_levels))
        updates = [
            b'{"arg":{"channel":"books","instId":"%s"},"action":"update","data":[{"asks":[["%s","%s","0","1"]],"bids":[],"ts":"%%d","checksum":%d,"prevSeqId":%%d,"seqId":%%d}]}'
            % (inst.encode(), number(best_price).encode(), number(size).encode(), crc)
            for size, crc in ((size_b, sums[0]), (size_a, sums[1]))
        ]
        quote = book.quote_at(inst, now, cfg)
        trade = (
            b'{"arg":{"channel":"trades","instId":"%s"},"data":[{"instId":"%s","tradeId":"%%d",'
            b'"px":"%s","sz":"0.001","side":"%%s","ts":"%%d"}]}'
            % (inst.encode(), inst.encode(), number(quote.ask_price).encode())
        )
        bbo = (
            b'{"arg":{"channel":"bbo-tbt","instId":"%s"},"data":[{"asks":[["%s","%s","0","1"]],'
            b'"bids":[["%s","%s","0","1"]],"ts":"%%d","seqId":%%d}]}'
            % tuple(
                x.encode()
                for x in (
                    inst,
                    number(quote.ask_price),
                    number(quote.ask_qty),
                    number(quote.bid_price),
                    number(quote.bid_qty),
                )
            )
        )
        first_id = data.last_trade_id_at(inst, now, cfg) + 1
        per_inst.append([trade, bbo, updates, first_id, seq, 0])

    def frames() -> list[bytes]:
        ms = time.time_ns() // 1_000_000
        chunk: list[bytes] = []
        while len(chunk) < _CHUNK:
            for state in per_inst:
                trade, bbo, updates, trade_id, seq, n = state
                chunk.append(trade % (trade_id, b"sell" if trade_id & 1 else b"buy", ms))
                chunk.append(bbo % (ms, seq))
                if trade_id % 10 == 0:  # the book's own chain: prevSeqId = the last seqId
                    chunk.append(updates[n & 1] % (ms, seq, seq + 1))
                    state[4], state[5] = seq + 1, n + 1
                state[3] = trade_id + 1
        return chunk

    await _blast(session, frames)


async def send_max_rate_deribit(session: DeribitSession) -> None:
    await _subscribed(session, lambda: bool(session.channels["book"]))
    sim, cfg = session.sim, session.cfg
    now = sim.now_us() // 1000 * 1000
    per_inst = []
    for inst, channel in session.channels["book"].items():
        bids, asks = levels_at(inst, now, cfg, sim.book_levels)
        change_id = int(book.update_id_at(inst, now))
        bid_levels, ask_levels = best_first(bids, True), best_first(asks, False)
        snapshot = {"type": "snapshot", "timestamp": now // 1000, "instrument_name": inst}
        snapshot |= {"change_id": change_id}
        snapshot["bids"] = [["new", p, q] for p, q in bid_levels]
        snapshot["asks"] = [["new", p, q] for p, q in ask_levels]
        push = {"jsonrpc": "2.0", "method": "subscription"}
        push["params"] = {"channel": channel, "data": snapshot}  # type: ignore[assignment]
        await session.ws.send(orjson.dumps(push), text=True)
        best_price, size_a = ask_levels[0]
        updates = [
            b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"%s","data":{"type":"change","timestamp":%%d,"prev_change_id":%%d,"instrument_name":"%s","change_id":%%d,"bids":[],"asks":[["change",%s,%s]]}}}'
            % (channel.encode(), inst.encode(), orjson.dumps(best_price), orjson.dumps(size))
            for size in (size_a + 0.001, size_a)
        ]
        quote = book.quote_at(inst, now, cfg)
        trade = (
            b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.%s.raw","data":'
            b'[{"timestamp":%%d,"price":%s,"amount":0.001,"direction":"%%s","instrument_name":"%s",'
            b'"trade_seq":%%d,"trade_id":"%%d"}]}}'
            % (inst.encode(), orjson.dumps(quote.ask_price), inst.encode())
        )
        values = (quote.ask_price, quote.bid_price, quote.ask_qty, quote.bid_qty)
        ask_p, bid_p, ask_q, bid_q = (orjson.dumps(v) for v in values)
        quote_frame = (
            b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"quote.%s","data":'
            b'{"timestamp":%%d,"instrument_name":"%s","best_ask_price":%s,"best_bid_price":%s,'
            b'"best_ask_amount":%s,"best_bid_amount":%s}}}'
            % (inst.encode(), inst.encode(), ask_p, bid_p, ask_q, bid_q)
        )
        first_id = data.last_trade_id_at(inst, now, cfg) + 1
        per_inst.append([trade, quote_frame, updates, first_id, change_id, 0])

    def frames() -> list[bytes]:
        ms = time.time_ns() // 1_000_000
        chunk: list[bytes] = []
        while len(chunk) < _CHUNK:
            for state in per_inst:
                trade, quote_frame, updates, trade_id, change_id, n = state
                side = b"sell" if trade_id & 1 else b"buy"
                chunk.append(trade % (ms, side, trade_id, trade_id))
                chunk.append(quote_frame % ms)
                if trade_id % 10 == 0:
                    chunk.append(updates[n & 1] % (ms, change_id, change_id + 1))
                    state[4], state[5] = change_id + 1, n + 1
                state[3] = trade_id + 1
        return chunk

    await _blast(session, frames)
