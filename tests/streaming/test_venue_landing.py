"""OKX and Deribit: simulator -> lander -> Delta over real loopback sockets, with book faults.

The simulator's books are one deterministic function of time (`simulator.book.depth_at`),
so every ``ticks_depth`` row can be checked against the book the venue had at the row's
``ts``: a row written from a book that missed an update would differ from it. Each fault
(a dropped update, a spoiled OKX checksum, a dropped connection) must be seen, recorded in
``stream_events``, answered by a fresh snapshot, and leave no wrong row behind.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from support.waiting import wait_until

from marketlake import schemas
from marketlake.exchanges.book import BOOK_CHECKSUM, BOOK_GAP, BOOK_RESYNCED
from marketlake.lake import Lake
from marketlake.simulator import Simulator, data
from marketlake.simulator.book import depth_at, quote_at
from marketlake.simulator.data import SimConfig
from marketlake.simulator.websocket import WsFaults, WsSimulator
from streaming import StreamConfig, StreamStats

VENUES = {"okx": ("BTC-USDT", "ETH-USDT-SWAP"), "deribit": ("BTC-PERPETUAL", "ETH-PERPETUAL")}
LEVELS = 30  # the simulator's book depth: more than OKX's 25 checksum levels
Landing = Any  # conftest.Landing: a StreamRunner on a thread


def config_of(exchange: str) -> SimConfig:
    return SimConfig(seed=13, trades_per_day=86_400 * 20, symbols=VENUES[exchange])


def stream_config(exchange: str, sim: WsSimulator, lake: Path, **options: object) -> StreamConfig:
    url = sim.okx_url if exchange == "okx" else sim.deribit_url
    defaults: dict[str, object] = {"flush_interval_s": 0.25, "reconnect_base_s": 0.05}
    return StreamConfig(exchange, VENUES[exchange], url, lake=str(lake), **{**defaults, **options})  # type: ignore[arg-type]


def simulator(exchange: str, faults: WsFaults | None = None) -> WsSimulator:
    return WsSimulator(
        config_of(exchange), faults=faults, book_levels=LEVELS, deribit_heartbeat_s=1.0
    )


def drain(sim: WsSimulator, run: Landing) -> StreamStats:
    """Pause the exchange so everything sent is received, then stop the lander."""
    sim.paused = True
    time.sleep(0.3)
    return run.stop()


def table(lake: Path, name: str) -> pl.DataFrame:
    return Lake(str(lake)).scan(name).collect()


def _us(column: str) -> pl.Expr:
    return pl.col(column).dt.epoch("us")


def assert_depth_is_the_venues_book(lake: Path, exchange: str) -> pl.DataFrame:
    """Every depth row is the top 20 of the venue's book at the row's time, exactly."""
    depth = table(lake, "ticks_depth").with_columns(ts_us=_us("ts"))
    assert depth.schema["bid_prices"] == pl.List(pl.Float64) and depth.height > 0
    assert set(depth["exchange"]) == {exchange}
    for row in depth.iter_rows(named=True):
        truth = depth_at(row["symbol"], row["ts_us"], config_of(exchange), levels=LEVELS)
        got = (row["bid_prices"], row["bid_qtys"], row["ask_prices"], row["ask_qtys"])
        assert got == (
            truth.bid_prices[:20].tolist(),
            truth.bid_qtys[:20].tolist(),
            truth.ask_prices[:20].tolist(),
            truth.ask_qtys[:20].tolist(),
        ), f"{row['symbol']} at {row['ts']} is not the venue's book"
    return depth


def book_events(lake: Path) -> list[dict[str, Any]]:
    """The book rows of `stream_events` in time order, ``detail`` decoded."""
    events = table(lake, "stream_events").filter(pl.col("kind").str.starts_with("book_"))
    rows = events.sort("ts").rows(named=True)
    return [{**row, "detail": orjson.loads(row["detail"])} for row in rows]


def assert_no_depth_while_out_of_sync(lake: Path, depth: pl.DataFrame) -> None:
    """Between a book leaving sync and its resync, its instrument lands no depth row."""
    events = book_events(lake)
    for broken in (e for e in events if e["kind"] != BOOK_RESYNCED):
        symbol, since = broken["symbol"], broken["detail"]["ts_us"]
        back = [
            e["detail"]["ts_us"]
            for e in events
            if e["kind"] == BOOK_RESYNCED
            and e["symbol"] == symbol
            and e["detail"]["ts_us"] >= since
        ]
        assert back, f"{symbol} never came back after {broken['kind']}"
        until = back[0]
        inside = depth.filter(
            (pl.col("symbol") == symbol) & pl.col("ts_us").is_between(since, until, "left")
        )
        assert inside.is_empty(), f"{symbol}: depth landed while out of sync"


@pytest.mark.parametrize("exchange", ["okx", "deribit"])
def test_a_venue_lands_every_trade_its_quotes_and_its_exact_book(
    exchange: str, tmp_path: Path, landing: Callable[..., Landing]
) -> None:
    with simulator(exchange) as sim:
        run = landing(stream_config(exchange, sim, tmp_path))
        time.sleep(2.0)
        stats = drain(sim, run)
        sent = sim.stats.sent_trade_ids
        snapshots = sim.stats.book_snapshots
        heartbeat_timeouts = sim.stats.heartbeat_timeouts
    trades = table(tmp_path, "ticks_trades")
    assert trades.schema == schemas.TICKS_TRADES and set(trades["exchange"]) == {exchange}
    for symbol in VENUES[exchange]:
        ids = trades.filter(pl.col("symbol") == symbol)["trade_id"]
        assert sorted(ids) == sorted(sent[symbol]) and ids.len() > 10
    quotes = table(tmp_path, "ticks_quotes").with_columns(ts_us=_us("ts"))
    assert set(quotes["symbol"]) == set(VENUES[exchange])
    for row in quotes.sample(20, seed=1).iter_rows(named=True):
        truth = quote_at(row["symbol"], row["ts_us"], config_of(exchange))
        assert (row["bid_price"], row["bid_qty"], row["ask_price"], row["ask_qty"]) == (
            truth.bid_price,
            truth.bid_qty,
            truth.ask_price,
            truth.ask_qty,
        )
    depth = assert_depth_is_the_venues_book(tmp_path, exchange)
    assert set(depth["symbol"]) == set(VENUES[exchange])
    assert stats.book_breaks == 0 and snapshots == len(VENUES[exchange])
    assert stats.reconnects == 0 and stats.quarantined == 0 and heartbeat_timeouts == 0
    partitions = {p.name for p in (tmp_path / "ticks_depth").glob("exchange=*")}
    assert partitions == {f"exchange={exchange}"}


FAULTS = {
    "a dropped update": ("drop_book_updates", BOOK_GAP),
    "a wrong checksum": ("bad_book_checksums", BOOK_CHECKSUM),
}


@pytest.mark.parametrize(
    ("exchange", "fault"),
    [("okx", "a dropped update"), ("okx", "a wrong checksum"), ("deribit", "a dropped update")],
)
def test_a_broken_book_is_recorded_resubscribed_and_lands_only_the_venues_book(
    exchange: str, fault: str, tmp_path: Path, landing: Callable[..., Landing]
) -> None:
    knob, kind = FAULTS[fault]
    faults = WsFaults()
    with simulator(exchange, faults) as sim:
        run = landing(stream_config(exchange, sim, tmp_path))
        wait_until(lambda: run.runner.stats.rows_landed.get("ticks_depth", 0) > 0, 60, "depth")
        setattr(faults, knob, 1)
        wait_until(lambda: run.runner.stats.book_resyncs >= 1, 60, "a resync")
        time.sleep(0.5)
        stats = drain(sim, run)
        snapshots = sim.stats.book_snapshots
    assert stats.book_breaks == stats.book_resyncs == 1 and stats.reconnects == 0
    events = book_events(tmp_path)
    assert [e["kind"] for e in events] == [kind, BOOK_RESYNCED]
    broken, back = events
    assert broken["symbol"] == back["symbol"] and broken["detail"]["levels_affected"] > 0
    expected, got = broken["detail"]["expected"], broken["detail"]["got"]
    assert expected != got and None not in (expected, got)
    assert back["detail"]["levels_affected"] == 2 * LEVELS  # the fresh snapshot
    assert snapshots == len(VENUES[exchange]) + 1  # one resubscription, nothing else
    depth = assert_depth_is_the_venues_book(tmp_path, exchange)
    assert_no_depth_while_out_of_sync(tmp_path, depth)
    resynced_at = back["detail"]["ts_us"]
    after = depth.filter((pl.col("symbol") == back["symbol"]) & (pl.col("ts_us") >= resynced_at))
    assert after.height >= 1  # the book lands again, and (above) it is the venue's


def drop_losing_trades(exchange: str, sim: WsSimulator, run: Landing) -> None:
    """Cut the connection so that at least one landed instrument surely loses trades.

    A plain drop loses only the trades that happen between the last one sent and the new
    subscription (whose cursor starts then), a few tens of ms at 20 trades/s per instrument:
    often none, and then there is no gap to fill. So the venue holds its sends first, and
    the connection is cut only once every instrument has traded since: those trades can
    only come back from REST.
    """
    stats: StreamStats = run.runner.stats
    wait_until(lambda: stats.rows_landed.get("ticks_trades", 0) > 0, 60, "trades")
    sim.paused = True  # nothing more is sent on this connection
    held_at = sim.now_us()
    cfg = config_of(exchange)
    before = {s: data.last_trade_id_at(s, held_at, cfg) for s in VENUES[exchange]}

    def every_instrument_traded_since() -> bool:
        now = sim.now_us()
        return all(data.last_trade_id_at(s, now, cfg) > last for s, last in before.items())

    wait_until(every_instrument_traded_since, 60, "a trade of every instrument while held")
    sim.drop_all()
    wait_until(lambda: stats.reconnects >= 1, 60, "a reconnect")
    sim.paused = False


def wait_for_a_gap_fill(run: Landing, caplog: pytest.LogCaptureFixture) -> None:
    """Wait until a gap is filled from REST, or is given up (then fail, saying why).

    The fill is paced to the venue's REST limits (8 requests/s on OKX): on a loaded machine
    it can take longer than the reconnect; the timeout only bounds a hang. Trades landing
    after the reconnect with no gap found mean none was lost: fail at once, saying so.
    """
    stats: StreamStats = run.runner.stats
    trades_then = stats.rows_landed.get("ticks_trades", 0)

    def settled() -> bool:
        no_gap = stats.gaps == 0 and stats.rows_landed.get("ticks_trades", 0) > trades_then + 50
        return bool(stats.gaps_filled or stats.gaps_not_filled or stats.gap_fills_failed or no_gap)

    try:
        wait_until(settled, 180, "a gap filled from REST, or given up")
    except AssertionError as timeout:
        raise AssertionError(f"{timeout}\n{stream_story(stats, caplog)}") from None
    assert stats.gaps_filled >= 1, f"no gap was filled\n{stream_story(stats, caplog)}"


def stream_story(stats: StreamStats, caplog: pytest.LogCaptureFixture) -> str:
    """The lander's events (kind, symbol, detail) and its stats, to read a failure by."""
    events = [r.getMessage() for r in caplog.records if r.name == "streaming.lander"]
    return "events:\n  " + "\n  ".join(events) + f"\nstats: {dataclasses.asdict(stats)}"


@pytest.mark.parametrize("exchange", ["okx", "deribit"])
def test_a_dropped_connection_reconnects_to_fresh_snapshots_and_fills_the_lost_trades(
    exchange: str, tmp_path: Path, landing: Callable[..., Landing], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="streaming.lander")  # its events, for a failure
    with simulator(exchange) as sim, Simulator(config_of(exchange)) as rest:
        config = stream_config(exchange, sim, tmp_path, gap_grace_s=0.1, rest_url=rest.base_url)
        run = landing(config)
        wait_until(lambda: run.runner.stats.rows_landed.get("ticks_depth", 0) > 0, 60, "depth")
        drop_losing_trades(exchange, sim, run)
        wait_for_a_gap_fill(run, caplog)
        time.sleep(0.5)
        stats = drain(sim, run)
        snapshots = sim.stats.book_snapshots
    events = table(tmp_path, "stream_events")
    kinds = Counter(events["kind"])
    assert kinds["disconnect"] == kinds["reconnect"] == 1
    assert snapshots == 2 * len(VENUES[exchange])  # every book again on the new connection
    depth = assert_depth_is_the_venues_book(tmp_path, exchange)
    reconnected = events.filter(pl.col("kind") == "reconnect")["ts"][0]
    for symbol in VENUES[exchange]:
        later = depth.filter((pl.col("symbol") == symbol) & (pl.col("received_at") > reconnected))
        assert later.height >= 1, f"{symbol}: no book after the reconnect"
    # The trades sent while the connection was down come from the venue's REST history:
    # every id from the first landed to the last, with the universe's values.
    assert stats.gaps == stats.gaps_filled == kinds["gap_filled"] >= 1
    trades = table(tmp_path, "ticks_trades")
    for symbol in VENUES[exchange]:
        rows = trades.filter(pl.col("symbol") == symbol).sort("trade_id")
        assert rows["trade_id"].is_unique().all()
        first, last = rows["trade_id"][0], rows["trade_id"][-1]
        truth = data.to_raw_trades(
            data.trades_between_ids(symbol, first, last, config_of(exchange))
        )
        compared = ["trade_id", "price", "qty", "is_buyer_maker"]
        assert rows.select(compared).equals(truth.select(compared))
        assert (rows["ts"] == truth["ts"].dt.truncate("1ms")).all()  # the venues send ms
    assert set(trades["source"]) == {"ws", "rest"}


def test_okx_is_kept_alive_with_ping_while_the_market_is_quiet(
    tmp_path: Path, landing: Callable[..., Landing]
) -> None:
    with simulator("okx") as sim:
        options = {"feed_options": {"keepalive_after_s": 0.2}, "silence_timeout_s": 0.8}
        run = landing(stream_config("okx", sim, tmp_path, **options))
        wait_until(lambda: run.runner.stats.rows_landed.get("ticks_trades", 0) > 0, 60, "trades")
        sim.paused = True  # no pushes; requests (ping) are still answered
        time.sleep(2.0)
        stats = run.stop()
    kinds = Counter(table(tmp_path, "stream_events")["kind"])
    assert kinds["watchdog"] == 0 and stats.reconnects == 0
    assert stats.quarantined == 0  # every "pong" was taken for what it is
