"""The lander's parts without sockets: trade id bookkeeping, frames, state, sharding, backoff."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import orjson
import polars as pl
import pytest

from marketlake import schemas
from marketlake.exchanges.binance.websocket import BinanceFeed
from marketlake.exchanges.coinbase.websocket import CoinbaseFeed
from marketlake.exchanges.feed import Depth, Quote, Trade, feed_for
from streaming import buffers
from streaming.connection import AttemptLimiter, ConnectionPolicy
from streaming.gaps import TradeSequencer
from streaming.state import StateStore

T0 = 1_786_309_548_000_000


def test_a_jump_in_trade_ids_is_a_gap_and_late_ids_inside_it_still_land() -> None:
    seq = TradeSequencer(grace_s=1.0)
    assert seq.observe("BTCUSDT", 100, 0.0, "c") == (True, None)
    keep, gap = seq.observe("BTCUSDT", 105, 0.0, "c")
    assert keep and gap is not None and (gap.first_id, gap.last_id, gap.count) == (101, 104, 4)
    assert seq.observe("BTCUSDT", 103, 0.1, "c") == (True, None)  # late, inside the gap
    assert seq.open_ranges() == {"BTCUSDT": [(101, 102), (104, 104)]}
    assert seq.observe("BTCUSDT", 103, 0.2, "c") == (False, None)  # now a repeat
    assert seq.observe("BTCUSDT", 99, 0.2, "c") == (False, None)  # below the watermark
    assert seq.due(0.5) == []  # still in its grace
    due = seq.due(1.5)
    assert [(g.first_id, g.last_id) for g in due] == [(101, 102), (104, 104)]
    assert seq.open_ranges() == {}


def test_resuming_makes_open_ranges_due_at_once() -> None:
    seq = TradeSequencer(grace_s=5.0)
    seq.resume("BTCUSDT", 200, [(150, 160)], now=10.0)
    assert [(g.first_id, g.last_id) for g in seq.due(10.0)] == [(150, 160)]
    keep, gap = seq.observe("BTCUSDT", 210, 10.0, "c")
    assert keep and gap is not None and (gap.first_id, gap.last_id) == (201, 209)


def test_frames_conform_to_the_table_schemas() -> None:
    bufs = buffers.Buffers()
    bufs.trades.add(Trade("BTCUSDT", 7, 100.01, 0.3, T0, True, T0 + 5))
    bufs.quotes.add(Quote("BTCUSDT", T0, T0 + 1, 9, 100.0, 1.0, 100.02, 2.0))
    bufs.quotes.add(Quote("BTC-USD", T0, T0 + 1, None, 100.0, 1.0, 100.02, 2.0))
    bufs.depth.add(Depth("BTCUSDT", T0, T0, 9, [100.0, 99.99], [1.0, 2.0], [100.02], [3.0]))
    bufs.quarantine.add((T0, None, "not json", "x"))
    bufs.events.add((T0, "BTCUSDT", "gap", '{"first_id":1}'))
    assert bufs.rows == 6
    taken = bufs.take()
    assert bufs.rows == 0 and taken.rows == 6
    frames = buffers.frames(taken, "binance", T0 + 10)
    assert {t: f.schema for t, f in frames.items()} == {
        "ticks_trades": schemas.TICKS_TRADES,
        "ticks_quotes": schemas.QUOTES,
        "ticks_depth": schemas.DEPTH,
        "quarantine": schemas.QUARANTINE,
        "stream_events": schemas.STREAM_EVENTS,
    }
    trade = frames["ticks_trades"].row(0, named=True)
    assert trade["quote_qty"] == 30.003 and trade["source"] == "ws"
    assert trade["date"].isoformat() == "2026-08-09"
    assert frames["ticks_quotes"].get_column("update_id").to_list() == [9, None]
    assert frames["ticks_depth"].get_column("bid_prices").to_list() == [[100.0, 99.99]]


def test_rest_fill_rows_are_marked_rest() -> None:
    raw = pl.DataFrame(
        {
            "trade_id": [5],
            "price": [1.5],
            "qty": [2.0],
            "quote_qty": [3.0],
            "ts": [T0],
            "is_buyer_maker": [False],
        }
    ).with_columns(pl.col("ts").cast(schemas.UTC_US))
    frame = buffers.rest_trades_frame(
        schemas.conform(raw, schemas.RAW_TRADES), "BTCUSDT", "binance", T0
    )
    assert frame.schema == schemas.TICKS_TRADES
    assert frame.row(0, named=True)["source"] == "rest"


def test_state_file_is_replaced_atomically_and_reads_back(tmp_path: Path) -> None:
    store = StateStore(str(tmp_path), "binance")
    assert store.read() is None
    store.write({"version": 1, "symbols": {"BTCUSDT": {"last_trade_id": 1}}})
    store.write({"version": 1, "symbols": {"BTCUSDT": {"last_trade_id": 2}}})
    assert store.read()["symbols"]["BTCUSDT"]["last_trade_id"] == 2
    assert sorted(p.name for p in (tmp_path / "_state").iterdir()) == ["stream_binance.json"]
    assert orjson.loads((tmp_path / "_state/stream_binance.json").read_bytes())["version"] == 1


def test_binance_symbols_are_sharded_within_1024_streams_and_never_split() -> None:
    feed = BinanceFeed()
    symbols = [f"S{i:04d}USDT" for i in range(700)]
    shards = feed.shards("wss://stream.binance.com:9443", symbols)
    assert [len(s.symbols) for s in shards] == [341, 341, 18]  # 1024 // 3 streams per symbol
    for shard in shards:
        in_url = shard.url.split("streams=", 1)[1].split("/")
        subscribed = [p for m in shard.subscribe for p in orjson.loads(m)["params"]]
        assert len(shard.url) <= 4000
        assert in_url + subscribed == [s for sym in shard.symbols for s in feed.streams(sym)]
        assert len(in_url) + len(subscribed) <= 1024
        assert all(len(orjson.loads(m)["params"]) <= 100 for m in shard.subscribe)


def test_one_small_shard_fits_in_the_url() -> None:
    [shard] = BinanceFeed().shards("ws://127.0.0.1:1", ["btcusdt", "ETHUSDT"])
    assert shard.url == (
        "ws://127.0.0.1:1/stream?timeUnit=MICROSECOND&streams=btcusdt@trade/btcusdt@bookTicker"
        "/btcusdt@depth20@100ms/ethusdt@trade/ethusdt@bookTicker/ethusdt@depth20@100ms"
    )
    assert shard.subscribe == ()


def test_milliseconds_can_be_asked_for_instead() -> None:
    [shard] = BinanceFeed(time_unit=None).shards("ws://127.0.0.1:1", ["btcusdt"])
    assert shard.url.startswith("ws://127.0.0.1:1/stream?streams=btcusdt@trade/")


def test_coinbase_subscribes_once_per_channel() -> None:
    [shard] = CoinbaseFeed().shards("wss://advanced-trade-ws.coinbase.com", ["btc-usd"])
    assert [orjson.loads(m) for m in shard.subscribe] == [
        {"type": "subscribe", "product_ids": ["BTC-USD"], "channel": c}
        for c in ("market_trades", "ticker", "level2", "heartbeats")
    ]


def test_feeds_are_found_by_exchange_name_only() -> None:
    assert feed_for("binance").exchange == "binance"
    assert feed_for("coinbase", depth=10).depth == 10  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="no websocket feed for exchange 'kraken'"):
        feed_for("kraken")


def test_backoff_grows_to_its_cap_with_jitter_never_near_zero() -> None:
    policy = ConnectionPolicy(30, None, 600, 0.25, 30.0, 1 << 20, 4.0)
    rng = random.Random(1)
    delays = [policy.backoff(n, rng) for n in range(12)]
    for n, delay in enumerate(delays):
        ceiling = min(30.0, 0.25 * 2**n)
        assert ceiling / 2 <= delay <= ceiling
    assert ConnectionPolicy(30, 86400, 600, 1, 1, 1, 1).rollover_after_s == 85800


def test_connection_attempts_wait_for_the_window() -> None:
    """3 attempts per 0.25 s: the 4th and 5th wait for the first ones to leave the window
    (a clock of our own, so a slow machine can't change the answer)."""
    now = [100.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    async def attempts() -> tuple[list[float], list[float]]:
        limiter = AttemptLimiter(3, 0.25, clock=lambda: now[0], sleep=sleep)
        waits, times = [], []
        for _ in range(5):
            waits.append(await limiter.acquire())
            times.append(now[0])
        return waits, times

    waits, times = asyncio.run(attempts())
    assert waits == [0.0, 0.0, 0.0, 0.25, 0.0]
    assert times == [100.0, 100.0, 100.0, 100.25, 100.25]
    for at in times:  # never more than 3 attempts inside any 0.25 s
        assert sum(at <= t < at + 0.25 for t in times) <= 3


TRADE_FRAME = (
    '{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":%d,'
    '"p":"100.00000000","q":"1.00000000","T":1786309548000,"m":true,"M":true}}'
)
TICKER_FRAME = (
    '{"stream":"btcusdt@bookTicker","data":{"u":%d,"s":"BTCUSDT","b":"99.00000000",'
    '"B":"1.00000000","a":"101.00000000","A":"1.00000000"}}'
)


def test_two_connections_delivering_the_same_frames_land_each_row_once(tmp_path: Path) -> None:
    """The rollover overlap: old and new connection both deliver; ids decide what lands."""
    from streaming.config import StreamConfig, StreamStats
    from streaming.lander import Lander

    async def land() -> tuple[Lander, StreamStats]:
        stats = StreamStats()
        config = StreamConfig("binance", ["BTCUSDT"], "ws://x", lake=str(tmp_path))
        lander = Lander(
            config,
            "binance",
            trade_ids_contiguous=True,
            book_ids_monotonic=True,
            stats=stats,
            filler=None,
        )
        old, new = BinanceFeed().parser(["BTCUSDT"]), BinanceFeed().parser(["BTCUSDT"])
        for n in range(10, 20):
            lander.frame("0.1", old, (TRADE_FRAME % n).encode(), T0 + n)
            lander.frame("0.1", old, (TICKER_FRAME % n).encode(), T0 + n)
        for n in range(15, 25):  # the replacement starts inside what was already seen
            lander.frame("0.2", new, (TRADE_FRAME % n).encode(), T0 + n)
            lander.frame("0.2", new, (TICKER_FRAME % n).encode(), T0 + n)
        return lander, stats

    lander, stats = asyncio.run(land())
    taken = lander.take()
    assert taken.trades["trade_id"] == list(range(10, 25))
    assert taken.quotes["update_id"] == list(range(10, 25))
    assert stats.duplicates == 10 and stats.gaps == 0
    assert taken.checkpoint["symbols"] == {"BTCUSDT": {"last_trade_id": 24, "open_gaps": []}}
