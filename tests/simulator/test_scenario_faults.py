"""The fault knobs the whole-pipeline scenario and the soak use, each doing what it says."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import time
import zipfile

import httpx
import orjson
import polars as pl
from websockets.sync.client import connect

from marketlake.simulator import Simulator, data
from marketlake.simulator.archive_csv import archive_csv_bytes
from marketlake.simulator.data import SimConfig
from marketlake.simulator.websocket import WsSimulator

CONFIG = SimConfig(seed=5, trades_per_day=2_400, symbols=("BTCUSDT",))
DAY = dt.date(2024, 3, 1)
ZIP = f"/data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-{DAY}.zip"


def test_repeated_rows_are_well_formed_rows_whose_ids_are_already_in_the_file() -> None:
    clean = archive_csv_bytes("BTCUSDT", DAY, CONFIG).decode().splitlines()
    repeated = archive_csv_bytes("BTCUSDT", DAY, CONFIG, repeat=True).decode().splitlines()
    assert repeated[: len(clean)] == clean
    extra = repeated[len(clean) :]
    assert extra and set(extra) <= set(clean)
    assert extra == clean[: len(extra)]  # the first hour, again


def test_an_archive_with_repeated_rows_has_a_checksum_that_matches_it() -> None:
    with Simulator(CONFIG) as sim, httpx.Client(base_url=sim.base_url) as client:
        sim.faults.repeated_rows.add(("BTCUSDT", DAY))
        body = client.get(ZIP).content
        checksum = client.get(f"{ZIP}.CHECKSUM").text.split()[0]
    assert hashlib.sha256(body).hexdigest() == checksum
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        text = archive.read(archive.namelist()[0]).decode()
    ids = pl.Series([int(line.split(",")[0]) for line in text.splitlines()])
    assert ids.len() > CONFIG.trades_per_day and ids.n_unique() == CONFIG.trades_per_day


def test_a_429_burst_carries_retry_after_then_the_api_answers_again() -> None:
    with Simulator(CONFIG) as sim, httpx.Client(base_url=sim.base_url) as client:
        sim.faults.fail_429, sim.faults.retry_after_s = 2, 3
        answers = [client.get("/api/v3/ping") for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "3"
    assert sim.stats.count_429 == 2


def test_one_slow_answer_delays_only_the_next_request() -> None:
    with Simulator(CONFIG) as sim, httpx.Client(base_url=sim.base_url, timeout=0.3) as client:
        sim.faults.slow_next, sim.faults.slow_next_seconds = 1, 1.0
        try:
            client.get("/api/v3/ping")
            timed_out = False
        except httpx.ReadTimeout:
            timed_out = True
        after = client.get("/api/v3/ping")
    assert timed_out
    assert after.status_code == 200 and sim.faults.slow_next == 0


def test_a_bogus_trade_is_sent_once_far_past_the_sequence_with_real_values() -> None:
    config = SimConfig(seed=5, trades_per_day=86_400 * 20, symbols=("BTCUSDT",))
    with WsSimulator(config) as ws:
        ws.faults.bogus_trades.append(("BTCUSDT", 5_000_000))
        with connect(f"{ws.url}/stream?streams=btcusdt@trade") as client:
            trades = []
            while len(trades) < 60:
                trades.append(orjson.loads(client.recv(timeout=10))["data"])
    ids = [t["t"] for t in trades]
    (bogus,) = ws.stats.bogus["BTCUSDT"]
    assert ids.count(bogus) == 1
    before = ids[ids.index(bogus) - 1]
    assert bogus == before + 5_000_000
    assert [i for i in ids if i != bogus] == list(range(ids[0], ids[0] + len(ids) - 1))
    assert ws.faults.bogus_trades == []


def test_malformed_frames_are_recorded_as_sent() -> None:
    config = SimConfig(seed=5, trades_per_day=86_400 * 20, symbols=("BTCUSDT",))
    with WsSimulator(config) as ws:
        ws.faults.malformed_every = 5
        with connect(f"{ws.url}/stream?streams=btcusdt@trade") as client:
            received = [client.recv(timeout=10) for _ in range(60)]
        sent = list(ws.stats.malformed_frames)
    received_bytes = [r.encode() if isinstance(r, str) else r for r in received]
    bad = [frame for frame in received_bytes if frame in set(sent)]
    assert bad and bad == sent[: len(bad)]


def test_paced_max_rate_connections_share_one_sequence_of_ids() -> None:
    with WsSimulator(CONFIG, max_rate=True, max_rate_trades_per_s=200) as ws:
        url = f"{ws.url}/stream?streams=btcusdt@trade"
        with connect(url, close_timeout=0.5) as first:
            early = [orjson.loads(first.recv(timeout=5))["data"]["t"] for _ in range(50)]
            time.sleep(0.2)
            with connect(url, close_timeout=0.5) as second:
                late = [orjson.loads(second.recv(timeout=5))["data"]["t"] for _ in range(50)]
            more = [orjson.loads(first.recv(timeout=5))["data"]["t"] for _ in range(200)]
    assert early == list(range(early[0], early[0] + 50))
    assert late == list(range(late[0], late[0] + 50))
    ours = early + more
    assert ours == list(range(early[0], early[0] + len(ours)))
    assert late[0] > early[-1]  # the second connection starts at the sequence's now...
    assert set(late) <= set(range(early[0], early[0] + 10_000))  # ...of the same sequence
    assert data.symbol_params("BTCUSDT").base_id < early[0]
