"""Simulator -> lander -> Delta over real loopback sockets, with faults.

The websocket simulator sends the same deterministic trades the REST simulator serves, so
what lands can be compared with the ground truth (`simulator.data`), id for id.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from support.waiting import wait_until

from marketlake import schemas
from marketlake.exchanges.binance.websocket import BinanceFeed
from marketlake.exchanges.recording import read_recording
from marketlake.lake import Lake
from marketlake.simulator import Simulator, data
from marketlake.simulator.book import depth_at
from marketlake.simulator.data import SimConfig
from marketlake.simulator.websocket import WsFaults, WsSimulator
from streaming import StreamConfig, StreamRunner, StreamStats, StreamStatus
from streaming.sink import DeltaSink

SYMBOLS = ("BTCUSDT", "ETHUSDT")
CONFIG = SimConfig(seed=11, trades_per_day=86_400 * 40, symbols=SYMBOLS)  # 40 trades/s each


@pytest.fixture(scope="module")
def rest() -> Iterator[Simulator]:
    with Simulator(CONFIG) as http:
        yield http


def stream_config(
    ws_url: str, lake: Path, symbols: tuple[str, ...] = SYMBOLS, **options: object
) -> StreamConfig:
    defaults: dict[str, object] = {
        "flush_interval_s": 0.25,
        "gap_grace_s": 0.2,
        "reconnect_base_s": 0.05,
        "reconnect_cap_s": 0.2,
        "shard_stagger_s": 0.0,
    }
    return StreamConfig("binance", symbols, ws_url, lake=str(lake), **{**defaults, **options})  # type: ignore[arg-type]


Landing = Any  # conftest.Landing: a StreamRunner on a thread


def run_then_drain(sim: WsSimulator, run: Landing, seconds: float) -> StreamStats:
    """Let it stream, then pause the exchange so everything sent is received before stopping."""
    time.sleep(seconds)
    sim.paused = True
    time.sleep(0.3)
    return run.stop()


def trades(lake: Path) -> pl.DataFrame:
    return Lake(str(lake)).scan("ticks_trades").collect()


def assert_matches_ground_truth(frame: pl.DataFrame, symbol: str) -> pl.DataFrame:
    """Every id from the first to the last landed, with the universe's exact values."""
    rows = (
        frame.filter(pl.col("symbol") == symbol).unique("trade_id", keep="first").sort("trade_id")
    )
    first, last = rows["trade_id"][0], rows["trade_id"][-1]
    truth = data.to_raw_trades(data.trades_between_ids(symbol, first, last, CONFIG))
    assert rows["trade_id"].to_list() == truth["trade_id"].to_list(), "missing trade ids"
    compared = ["trade_id", "price", "qty", "quote_qty", "is_buyer_maker"]
    assert rows.select(compared).equals(truth.select(compared))
    # Live trades carry µs (timeUnit=MICROSECOND), exactly the archive's time; REST only ms.
    exact = (
        pl.when(pl.col("source") == "ws")
        .then(pl.col("truth"))
        .otherwise(pl.col("truth").dt.truncate("1ms"))
    )
    times = rows.with_columns(truth=truth["ts"]).select((pl.col("ts") == exact).all())
    assert times.item()
    return rows


def events(lake: Path) -> pl.DataFrame:
    return Lake(str(lake)).scan("stream_events").collect()


def test_every_trade_the_simulator_sent_lands_with_quotes_and_depth(
    tmp_path: Path, landing: Callable[..., Landing]
) -> None:
    with WsSimulator(CONFIG) as sim:
        run = landing(stream_config(sim.url, tmp_path))
        stats = run_then_drain(sim, run, 2.0)
        sent = sim.stats.sent_trade_ids
    landed = trades(tmp_path)
    assert landed.schema == schemas.TICKS_TRADES
    for symbol in SYMBOLS:
        ids = landed.filter(pl.col("symbol") == symbol)["trade_id"].to_list()
        assert sorted(ids) == sorted(sent[symbol]) and len(sent[symbol]) > 40
        assert_matches_ground_truth(landed, symbol)
    assert set(landed["source"]) == {"ws"} and stats.gaps == 0 and stats.duplicates == 0
    lake = Lake(str(tmp_path))
    quotes = lake.scan("ticks_quotes").collect()
    depth = lake.scan("ticks_depth").collect()
    assert quotes.schema == schemas.QUOTES and depth.schema == schemas.DEPTH
    assert set(quotes["symbol"]) == set(depth["symbol"]) == set(SYMBOLS)
    assert (quotes["bid_price"] < quotes["ask_price"]).all()
    assert depth["bid_prices"].list.len().min() == 20 and depth["ask_prices"].list.len().min() == 20
    assert (quotes["ts"] == quotes["received_at"]).all()  # bookTicker has no event time
    assert (landed["ts"] < landed["received_at"]).all()
    assert stats.rows_landed["ticks_trades"] == landed.height
    partitions = {p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("ticks_trades/*/*/*")}
    assert partitions == {
        f"ticks_trades/exchange=binance/symbol={s}/date={d}"
        for s, d in landed.select("symbol", pl.col("date").cast(pl.String)).unique().rows()
    }
    state = Lake(str(tmp_path)).uri + "/_state/stream_binance.json"
    assert Path(state).exists()


def test_disconnects_and_skipped_trades_are_filled_from_rest_to_the_ground_truth(
    tmp_path: Path, landing: Callable[..., Landing], rest: Simulator
) -> None:
    faults = WsFaults(drop_every_s=0.8, skip_every=17)
    with WsSimulator(CONFIG, faults=faults) as sim:
        run = landing(stream_config(sim.url, tmp_path, rest_url=rest.base_url))
        stats = run_then_drain(sim, run, 3.0)
        skipped = sim.stats.skipped_trade_ids
    landed = trades(tmp_path)
    for symbol in SYMBOLS:
        rows = assert_matches_ground_truth(landed, symbol)
        from_rest = set(rows.filter(pl.col("source") == "rest")["trade_id"])
        assert skipped[symbol] & set(rows["trade_id"]) <= from_rest
    kinds = Counter(events(tmp_path)["kind"])
    assert kinds["disconnect"] >= 1 and kinds["reconnect"] == kinds["disconnect"]
    assert kinds["gap"] == stats.gaps > 0
    assert kinds["gap_filled"] == stats.gaps_filled == stats.gaps
    gap = events(tmp_path).filter(pl.col("kind") == "gap")["detail"].str.json_decode()[0]
    assert set(gap) == {"first_id", "last_id", "count", "cause"}


def test_malformed_frames_are_quarantined_and_the_stream_keeps_landing(
    tmp_path: Path, landing: Callable[..., Landing]
) -> None:
    with WsSimulator(CONFIG, faults=WsFaults(malformed_every=7)) as sim:
        run = landing(stream_config(sim.url, tmp_path))
        stats = run_then_drain(sim, run, 2.0)
        sent = sim.stats.sent_trade_ids
    quarantine = Lake(str(tmp_path)).scan("quarantine").collect()
    assert quarantine.schema == schemas.QUARANTINE
    assert quarantine.height == stats.quarantined == sim.stats.malformed > 10
    assert set(quarantine["reason"]) == {
        "not json",
        "non-positive price",
        "missing field 'q'",
        "mistyped field 't': expected int",
        "unknown stream 'btcusdt@kline_1m'",
        "symbol not subscribed: ZZZZUSDT",
    }
    assert dict(Counter(quarantine["reason"])) == stats.quarantine_reasons
    landed = trades(tmp_path)
    for symbol in SYMBOLS:
        assert set(landed.filter(pl.col("symbol") == symbol)["trade_id"]) == sent[symbol]


def test_rollover_opens_the_new_connection_first_and_lands_nothing_twice(
    tmp_path: Path, landing: Callable[..., Landing]
) -> None:
    with WsSimulator(CONFIG) as sim:
        config = stream_config(sim.url, tmp_path, max_connection_age_s=1.0, rollover_margin_s=0.3)
        run = landing(config)
        stats = run_then_drain(sim, run, 3.0)
        sent = sim.stats.sent_trade_ids
    kinds = Counter(events(tmp_path)["kind"])
    assert kinds["rollover"] >= 2 and kinds["disconnect"] == 0
    assert stats.gaps == 0  # the replacement was delivering before the old one closed
    landed = trades(tmp_path)
    assert landed["trade_id"].is_unique().all()
    for symbol in SYMBOLS:
        assert set(landed.filter(pl.col("symbol") == symbol)["trade_id"]) == sent[symbol]
    quotes = Lake(str(tmp_path)).scan("ticks_quotes").collect()
    for symbol in SYMBOLS:
        ids = quotes.filter(pl.col("symbol") == symbol).sort("received_at")["update_id"]
        assert ids.is_unique().all() and ids.is_sorted()


def test_a_silent_connection_is_recycled_and_its_lost_trades_are_filled(
    tmp_path: Path, landing: Callable[..., Landing], rest: Simulator
) -> None:
    faults = WsFaults(stall_after_s=0.5, stall_for_s=5.0)
    with WsSimulator(CONFIG, faults=faults) as sim:
        config = stream_config(sim.url, tmp_path, rest_url=rest.base_url, silence_timeout_s=0.6)
        run = landing(config)
        wait_until(lambda: sim.stats.connections >= 2, 5, "a reconnect after the stall")
        faults.stall_after_s = None
        stats = run_then_drain(sim, run, 1.0)
    kinds = Counter(events(tmp_path)["kind"])
    assert kinds["watchdog"] >= 1 and kinds["reconnect"] >= 1
    assert stats.gaps_filled >= 1
    for symbol in SYMBOLS:
        assert_matches_ground_truth(trades(tmp_path), symbol)


def test_symbols_are_sharded_and_overflow_streams_are_subscribed_within_the_rate_limit(
    tmp_path: Path, landing: Callable[..., Landing]
) -> None:
    symbols = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT")
    config = SimConfig(seed=11, trades_per_day=86_400 * 20, symbols=symbols)
    # 6 streams per connection (2 symbols); only the first stream fits in the URL, the other
    # 5 go as SUBSCRIBE messages: at 4 per second, under Binance's 5 incoming per second.
    options = {"max_streams_per_connection": 6, "max_url_length": 60}
    [first, _second] = BinanceFeed(**options).shards("ws://127.0.0.1:1", symbols)
    assert first.url == "ws://127.0.0.1:1/stream?timeUnit=MICROSECOND&streams=btcusdt@trade"
    assert [orjson.loads(m)["params"] for m in first.subscribe] == [
        [
            "btcusdt@bookTicker",
            "btcusdt@depth20@100ms",
            "ethusdt@trade",
            "ethusdt@bookTicker",
            "ethusdt@depth20@100ms",
        ]
    ]
    with WsSimulator(config) as sim:
        run = landing(stream_config(sim.url, tmp_path, symbols, feed_options=options))
        stats = run_then_drain(sim, run, 2.0)
        assert sim.stats.refused == 0 and sim.stats.connections == 2
    landed = trades(tmp_path)
    assert set(landed["symbol"]) == set(symbols) and stats.reconnects == 0
    quotes = Lake(str(tmp_path)).scan("ticks_quotes").collect()
    assert set(quotes["symbol"]) == set(symbols)


def test_coinbase_lands_trades_quotes_and_the_exact_book(
    tmp_path: Path, landing: Callable[..., Landing]
) -> None:
    products = ("BTC-USD", "ETH-USD")
    config = SimConfig(seed=5, trades_per_day=86_400 * 20, symbols=products)
    with WsSimulator(config, coinbase_levels=40) as sim:
        stream = StreamConfig(
            "coinbase", products, sim.coinbase_url, lake=str(tmp_path), flush_interval_s=0.25
        )
        run = landing(stream)
        stats = run_then_drain(sim, run, 2.5)
        sent = sim.stats.sent_trade_ids
    lake = Lake(str(tmp_path))
    landed = lake.scan("ticks_trades").collect()
    assert set(landed["exchange"]) == {"coinbase"} and stats.gaps == 0
    for product in products:
        ids = landed.filter(pl.col("symbol") == product)["trade_id"]
        assert ids.is_unique().all()
        # The subscribe snapshot's 100 trades, then every live one, without a hole.
        assert set(ids) == set(range(ids.min(), ids.max() + 1)) and set(ids) >= sent[product]
        assert ids.len() == len(sent[product]) + 100
        truth = data.to_raw_trades(data.trades_between_ids(product, ids.min(), ids.max(), config))
        rows = landed.filter(pl.col("symbol") == product).sort("trade_id")
        assert rows["is_buyer_maker"].to_list() == truth["is_buyer_maker"].to_list()
        assert rows["price"].to_list() == truth["price"].to_list()
    quotes = lake.scan("ticks_quotes").collect()
    assert quotes["update_id"].null_count() == quotes.height > 0
    depth = lake.scan("ticks_depth").collect()
    assert set(depth["symbol"]) == set(products)
    for row in depth.sample(10, seed=1).iter_rows(named=True):
        ts_us = int(row["ts"].timestamp() * 1_000_000 + 0.5)
        book = depth_at(row["symbol"], ts_us, config, levels=40)
        assert row["bid_prices"] == book.bid_prices[:20].tolist()
        assert row["bid_qtys"] == book.bid_qtys[:20].tolist()
        assert row["ask_prices"] == book.ask_prices[:20].tolist()
        assert row["ask_qtys"] == book.ask_qtys[:20].tolist()


REPLAY_SYMBOLS = ["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"]


def test_replaying_a_real_recording_lands_what_parsing_it_gives(
    tmp_path: Path, landing: Callable[..., Landing], samples: Path
) -> None:
    path = samples / "binance_ws/cryptofeed_BINANCE.ws.1.0.log"
    parser = BinanceFeed().parser(REPLAY_SYMBOLS)
    direct = [
        r for rec in read_recording(path) for r in parser.parse(rec.raw, rec.received_at_us or 0)
    ]
    with WsSimulator(replay=path, replay_speed=None) as sim:
        stream = StreamConfig(
            "binance", REPLAY_SYMBOLS, sim.url, lake=str(tmp_path), flush_interval_s=0.2
        )
        run = landing(stream)
        wait_until(sim.replay_done.is_set, 10, "the end of the recording")
        wait_until(lambda: run.runner.stats.messages >= 265, 5, "every frame received")
        run.stop()
    lake = Lake(str(tmp_path))
    quotes = lake.scan("ticks_quotes").collect().sort("received_at")
    receive_stamped = ["ts", "received_at", "date"]  # bookTicker's ts is the receive time
    expected = [r for r in direct if type(r).__name__ == "Quote"]
    assert quotes.drop(*receive_stamped, "exchange").rows() == [
        (q.symbol, q.update_id, q.bid_price, q.bid_qty, q.ask_price, q.ask_qty) for q in expected
    ]
    quarantine = lake.scan("quarantine").collect().sort("ts")
    rejected = [r for r in direct if type(r).__name__ == "Reject"]
    assert quarantine.select("reason", "symbol", "payload").rows() == [
        (r.reason, r.symbol, r.payload) for r in rejected
    ]


def test_the_capture_file_replays_to_exactly_the_landed_rows(
    tmp_path: Path, landing: Callable[..., Landing]
) -> None:
    capture = tmp_path / "capture.jsonl"
    with WsSimulator(CONFIG) as sim:
        run = landing(stream_config(sim.url, tmp_path / "lake", capture=capture))
        run_then_drain(sim, run, 1.5)
    parser = BinanceFeed().parser(SYMBOLS)
    recorded = list(read_recording(capture))
    parsed = [r for rec in recorded for r in parser.parse(rec.raw, rec.received_at_us)]
    replayed = [r for r in parsed if type(r).__name__ == "Trade"]
    landed = trades(tmp_path / "lake").sort("received_at", "trade_id")
    assert [
        (t.symbol, t.trade_id, t.price, t.qty, t.is_buyer_maker, t.received_at_us) for t in replayed
    ] == [
        (
            r["symbol"],
            r["trade_id"],
            r["price"],
            r["qty"],
            r["is_buyer_maker"],
            _us(r["received_at"]),
        )
        for r in landed.iter_rows(named=True)
    ]
    assert len(recorded) == run.runner.stats.messages


def _us(value: object) -> int:
    import datetime as dt

    assert isinstance(value, dt.datetime)
    return (value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


def test_a_failing_lake_is_retried_and_nothing_is_lost(
    tmp_path: Path, landing: Callable[..., Landing], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_append = Lake.append
    failures = {"left": 4}

    def flaky_append(self: Lake, table: str, frame: pl.DataFrame, partition_by: object) -> int:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise OSError("simulated: object store unavailable")
        return real_append(self, table, frame, partition_by)  # type: ignore[arg-type]

    monkeypatch.setattr(Lake, "append", flaky_append)
    with WsSimulator(CONFIG) as sim:
        run = landing(stream_config(sim.url, tmp_path))
        stats = run_then_drain(sim, run, 2.0)
        sent = sim.stats.sent_trade_ids
    assert stats.write_errors == 4 and "object store unavailable" in (stats.last_error or "")
    landed = trades(tmp_path)
    for symbol in SYMBOLS:
        assert set(landed.filter(pl.col("symbol") == symbol)["trade_id"]) == sent[symbol]


def test_rows_the_lake_never_takes_are_spilled_at_shutdown_not_dropped(
    tmp_path: Path, landing: Callable[..., Landing], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_append(self: Lake, table: str, frame: pl.DataFrame, partition_by: object) -> int:
        raise OSError("simulated: disk full")

    monkeypatch.setattr(Lake, "append", broken_append)
    with WsSimulator(CONFIG) as sim:
        config = stream_config(
            sim.url, tmp_path / "lake", shutdown_timeout_s=0.5, spill_dir=tmp_path / "spill"
        )
        run = landing(config)
        stats = run_then_drain(sim, run, 1.0)
        sent = sum(len(ids) for ids in sim.stats.sent_trade_ids.values())
    assert stats.unwritten_rows > 0 and stats.spilled
    spilled = pl.concat(
        [pl.read_parquet(p) for p in stats.spilled if Path(p).name.startswith("ticks_trades")]
    )
    assert spilled.schema == schemas.TICKS_TRADES and spilled.height == sent


@pytest.mark.parametrize("outcome", ["lands", "fails"])
def test_a_commit_still_running_at_the_shutdown_deadline_is_spilled_and_named_maybe_landed(
    outcome: str,
    tmp_path: Path,
    landing: Callable[..., Landing],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A trades commit hangs past the deadline, then lands (or fails) after shutdown.

    Every trade must be in the table or in the spill; the only rows that may be in both are
    those of the file named maybe-landed; the writer thread ends without an exception.
    """
    real_append = Lake.append
    armed, entered, release = threading.Event(), threading.Event(), threading.Event()

    def hanging_append(self: Lake, table: str, frame: pl.DataFrame, partition_by: object) -> int:
        if table == "ticks_trades" and armed.is_set() and not entered.is_set():
            entered.set()
            release.wait(60)
            if outcome == "fails":
                raise OSError("simulated: the hung commit failed after all")
        return real_append(self, table, frame, partition_by)  # type: ignore[arg-type]

    thread_errors: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: thread_errors.append(args.exc_value))
    monkeypatch.setattr(Lake, "append", hanging_append)
    monkeypatch.setattr(DeltaSink, "CLOSE_GRACE_S", 0.2)
    lake, spill_dir = tmp_path / "lake", tmp_path / "spill"
    with WsSimulator(CONFIG) as sim:
        config = stream_config(sim.url, lake, shutdown_timeout_s=0.2, spill_dir=spill_dir)
        run = landing(config)
        wait_until(lambda: run.runner.stats.rows_landed.get("ticks_trades", 0) > 0, 60, "trades")
        armed.set()
        wait_until(entered.is_set, 60, "a trades commit to hang")
        stats = run_then_drain(sim, run, 0.5)  # queued behind the hung commit
        sent = sim.stats.sent_trade_ids
    release.set()
    for writer in [t for t in threading.enumerate() if t.name == "delta-sink"]:
        writer.join(60)
        assert not writer.is_alive()
    assert thread_errors == []

    assert stats.unwritten_rows > 0 and len(stats.spilled_maybe_landed) == 1
    [maybe_path] = stats.spilled_maybe_landed
    assert Path(maybe_path).name.startswith("ticks_trades-") and maybe_path in stats.spilled
    maybe = pl.read_parquet(maybe_path)
    assert stats.maybe_landed_rows == maybe.height > 0
    readme = orjson.loads(next(spill_dir.glob("README-*.json")).read_bytes())
    assert readme["maybe_landed"] == [maybe_path]
    others = [p for p in stats.spilled if p != maybe_path and Path(p).name.startswith("ticks_")]
    spilled = pl.concat([pl.read_parquet(p) for p in others if "ticks_trades" in p])
    table = trades(lake)
    assert table["trade_id"].is_unique().all()  # no flush was committed twice
    # The maybe-landed commit is atomic: all its rows in the table, or none of them.
    in_table = maybe.join(table, on=["symbol", "trade_id"], how="semi").height
    assert in_table == (maybe.height if outcome == "lands" else 0)
    # No other spilled row is in the table, and together they hold every trade sent.
    assert spilled.join(table, on=["symbol", "trade_id"], how="semi").is_empty()
    everything = pl.concat([table, spilled, maybe])
    for symbol in SYMBOLS:
        ids = set(everything.filter(pl.col("symbol") == symbol)["trade_id"])
        assert ids == sent[symbol]


def test_cancelling_the_run_lands_what_was_buffered_then_reraises(tmp_path: Path) -> None:
    async def run_and_cancel(sim: WsSimulator) -> StreamStats:
        # Nothing is flushed on its own: only the shutdown path can land the rows.
        config = stream_config(sim.url, tmp_path, flush_interval_s=600.0, handle_signals=False)
        runner = StreamRunner(config)
        task = asyncio.create_task(runner.run_async())
        await asyncio.sleep(1.2)
        sim.paused = True
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return runner.stats

    with WsSimulator(CONFIG) as sim:
        stats = asyncio.run(run_and_cancel(sim))
        sent = sim.stats.sent_trade_ids
    landed = trades(tmp_path)
    assert stats.flushes == 1 and stats.rows_landed["ticks_trades"] == landed.height
    for symbol in SYMBOLS:
        assert set(landed.filter(pl.col("symbol") == symbol)["trade_id"]) == sent[symbol]


def test_the_status_callback_reports_rate_rows_and_lag(
    tmp_path: Path, landing: Callable[..., Landing]
) -> None:
    seen: list[StreamStatus] = []
    with WsSimulator(CONFIG) as sim:
        config = stream_config(
            sim.url, tmp_path, status_callback=seen.append, status_interval_s=0.3
        )
        run = landing(config)
        run_then_drain(sim, run, 1.5)
    assert len(seen) >= 3
    last = seen[-2]
    assert last.messages_per_s > 50 and last.connections == 1 and last.reconnects == 0
    assert last.rows_landed["ticks_trades"] > 0 and last.write_errors == 0
    assert last.receive_lag_ms is not None and 0 <= last.receive_lag_ms < 500
    assert last.land_lag_ms is not None and 0 <= last.land_lag_ms < 2000


def test_replaying_the_coinbase_recording_resyncs_on_lost_frames_and_lands_every_trade(
    tmp_path: Path, landing: Callable[..., Landing], samples: Path
) -> None:
    path = samples / "coinbase_ws/cryptofeed_v3_COINBASE.advanced_trade.2026-08-09.head.jsonl"
    # At twice the recorded pace: the frames in flight when a connection is recycled are
    # lost (as they would be live: level2 and at most a ticker or two), no trade among them.
    with WsSimulator(replay=path, replay_speed=2.0) as sim:
        stream = StreamConfig(
            "coinbase",
            ["BTC-USD", "ETH-USD"],
            sim.url,
            lake=str(tmp_path),
            flush_interval_s=0.2,
            reconnect_base_s=0.05,
        )
        run = landing(stream)
        wait_until(sim.replay_done.is_set, 10, "the end of the recording")
        time.sleep(0.3)
        stats = run.stop()
    lake = Lake(str(tmp_path))
    landed = lake.scan("ticks_trades").collect()
    assert landed.height == 208 and landed["trade_id"].is_unique().all()
    assert stats.gaps == 0 and 18 <= lake.scan("ticks_quotes").collect().height <= 23
    kinds = Counter(events(tmp_path)["kind"])
    # sequence_num 13 and 21 (the level2 snapshots) are missing from the recording; the
    # second jump may fall in the frames lost while reconnecting after the first.
    assert 1 <= kinds["resync"] <= 2 and kinds["reconnect"] == kinds["resync"]
    reasons = Counter(lake.scan("quarantine").collect()["reason"])
    assert reasons == {"unsupported channel 'candles'": 3}


def test_a_server_shutdown_notice_rolls_over_before_the_server_closes(
    tmp_path: Path, landing: Callable[..., Landing]
) -> None:
    with WsSimulator(
        CONFIG, faults=WsFaults(server_shutdown_after_s=0.6, shutdown_grace_s=1.0)
    ) as sim:
        run = landing(stream_config(sim.url, tmp_path))
        stats = run_then_drain(sim, run, 2.0)
        sent = sim.stats.sent_trade_ids
    kinds = Counter(events(tmp_path)["kind"])
    assert kinds["resync"] >= 1 and kinds["rollover"] >= 1 and kinds["disconnect"] == 0
    assert stats.gaps == 0
    landed = trades(tmp_path)
    assert landed["trade_id"].is_unique().all()
    for symbol in SYMBOLS:
        assert set(landed.filter(pl.col("symbol") == symbol)["trade_id"]) == sent[symbol]
