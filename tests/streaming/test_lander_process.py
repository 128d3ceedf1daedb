"""The lander as its own process (``python -m streaming``): SIGTERM and kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from support.waiting import wait_until

from marketlake.lake import Lake
from marketlake.simulator import Simulator, data
from marketlake.simulator.data import SimConfig
from marketlake.simulator.websocket import WsSimulator
from streaming import StateStore

SYMBOLS = ("BTCUSDT", "ETHUSDT")
CONFIG = SimConfig(seed=23, trades_per_day=86_400 * 40, symbols=SYMBOLS)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def exchange() -> Iterator[tuple[Simulator, WsSimulator]]:
    with Simulator(CONFIG) as http, WsSimulator(CONFIG) as ws:
        yield http, ws


def start_lander(
    ws: WsSimulator, http: Simulator, lake: Path, *extra: str
) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        "-m",
        "streaming",
        "--symbols",
        ",".join(SYMBOLS),
        "--ws-url",
        ws.url,
        "--rest-url",
        http.base_url,
        "--lake",
        str(lake),
        "--gap-grace",
        "0.2",
        *extra,
    ]
    return subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def state_has_both_symbols(lake: Path) -> bool:
    try:
        state = StateStore(str(lake), "binance").read()
    except ValueError:
        return False
    return bool(state) and set(state["symbols"]) == set(SYMBOLS)


def test_sigterm_flushes_what_is_buffered_and_exits_0(
    tmp_path: Path, exchange: tuple[Simulator, WsSimulator]
) -> None:
    http, ws = exchange
    # Neither threshold is reached: only the shutdown flush can write anything.
    lander = start_lander(ws, http, tmp_path, "--flush-interval", "600", "--flush-rows", "10000000")
    try:
        wait_until(lambda: ws.stats.frames > 100, 20, "the lander to connect and receive")
        assert not (tmp_path / "ticks_trades").exists()
        ws.paused = True
        time.sleep(0.3)
        lander.send_signal(signal.SIGTERM)
        out, err = lander.communicate(timeout=30)
    finally:
        lander.kill()
    assert lander.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    lake = Lake(str(tmp_path))
    assert lake.version("ticks_trades") == 0  # one commit: the shutdown flush
    landed = lake.scan("ticks_trades").collect()
    for symbol in SYMBOLS:
        assert (
            set(landed.filter(pl.col("symbol") == symbol)["trade_id"])
            == ws.stats.sent_trade_ids[symbol]
        )
    assert summary["rows_landed"]["ticks_trades"] == landed.height
    kinds = set(lake.scan("stream_events").collect()["kind"])
    assert {"start", "connect", "signal", "stop"} <= kinds


def test_after_kill_9_a_restart_fills_everything_from_the_checkpoint(
    tmp_path: Path, exchange: tuple[Simulator, WsSimulator]
) -> None:
    http, ws = exchange
    first = start_lander(ws, http, tmp_path, "--flush-interval", "0.3")
    try:
        wait_until(lambda: state_has_both_symbols(tmp_path), 20, "a first checkpoint")
        time.sleep(0.5)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        first.kill()
    checkpoint = StateStore(str(tmp_path), "binance").read()
    assert checkpoint is not None
    time.sleep(0.5)  # the market goes on while nobody listens
    second = start_lander(ws, http, tmp_path, "--flush-interval", "0.3")
    try:
        wait_until(lambda: ws.stats.connections >= 2 and ws.stats.frames > 0, 20, "the restart")
        time.sleep(1.5)
        ws.paused = True
        time.sleep(0.5)
        second.send_signal(signal.SIGTERM)
        _, err = second.communicate(timeout=30)
    finally:
        second.kill()
    assert second.returncode == 0, err
    lake = Lake(str(tmp_path))
    landed = lake.scan("ticks_trades").collect()
    for symbol in SYMBOLS:
        rows = landed.filter(pl.col("symbol") == symbol).unique("trade_id").sort("trade_id")
        first_id, last_id = rows["trade_id"][0], rows["trade_id"][-1]
        assert rows["trade_id"].to_list() == list(range(first_id, last_id + 1))
        assert last_id == max(ws.stats.sent_trade_ids[symbol])
        truth = data.trades_between_ids(symbol, first_id, last_id, CONFIG)
        assert rows["price"].to_list() == truth["price"].to_list()
        assert checkpoint["symbols"][symbol]["last_trade_id"] < last_id
    resumed = lake.scan("stream_events").collect().filter(pl.col("kind") == "resume")
    assert set(resumed["symbol"]) == set(SYMBOLS)
    filled = landed.filter(pl.col("source") == "rest")
    assert filled.height > 0  # the ids nobody received (and the lost buffer) came from REST
