"""The local exchange: its deterministic universe and its HTTP side over real loopback sockets."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import threading
import zipfile
from collections.abc import Iterator

import httpx
import numpy as np
import polars as pl
import pytest
from support.samples import BINANCE_REST, BINANCE_VISION

from marketlake.schemas import RAW_TRADES
from marketlake.simulator import Simulator, data, run
from marketlake.simulator.archive_csv import archive_csv_bytes
from marketlake.simulator.book import depth_at, quote_at, quotes_at
from marketlake.simulator.data import SimConfig
from marketlake.simulator.ratelimit import WeightLimiter

CSV_LINE = re.compile(
    r"^(?P<id>\d+),(?P<price>\d+\.\d{8}),(?P<qty>\d+\.\d{8}),(?P<quote>\d+\.\d{8}),"
    r"(?P<time>\d{13}|\d{16}),(True|False),(True|False)$"
)
SMALL = SimConfig(trades_per_day=2_000)
ODD = SimConfig(trades_per_day=1_001)  # not a multiple of 24: uneven blocks
D2024 = dt.date(2024, 12, 31)
D2025 = dt.date(2025, 1, 1)
NOW = dt.datetime(2025, 1, 3, 12, 30, 15, 250_000, tzinfo=dt.UTC)


def _zip_url(symbol: str, day: dt.date) -> str:
    return f"/data/spot/daily/trades/{symbol}/{symbol}-trades-{day.isoformat()}.zip"


def _csv_rows(zip_bytes: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        (name,) = archive.namelist()
        return archive.read(name).decode().splitlines()


# --- the universe --------------------------------------------------------------------------------


def test_same_config_gives_identical_frames_and_seed_changes_them() -> None:
    a = data.day_trades("BTCUSDT", D2025, SMALL)
    b = data.day_trades("BTCUSDT", D2025, SimConfig(trades_per_day=2_000))
    assert a.equals(b)
    assert a.schema == data.TRADE_SCHEMA
    other = data.day_trades("BTCUSDT", D2025, SimConfig(seed=8, trades_per_day=2_000))
    assert not a.select("price", "time").equals(other.select("price", "time"))


def test_ids_are_contiguous_across_hours_and_days() -> None:
    days = [dt.date(2024, 12, 30) + dt.timedelta(days=i) for i in range(3)]
    frames = [data.day_trades("ETHUSDT", day, ODD) for day in days]
    ids = pl.concat(frames)["trade_id"]
    assert ids.diff().drop_nulls().eq(1).all()
    assert [f.height for f in frames] == [1_001] * 3
    for day, frame in zip(days, frames, strict=True):
        assert frame["trade_id"][0] == data.first_trade_id("ETHUSDT", day, ODD)
    blocks = [data.block_trades("ETHUSDT", days[1], h, ODD) for h in range(24)]
    assert [b.height for b in blocks] == [42] * 17 + [41] * 7
    assert pl.concat(blocks).equals(frames[1])
    for hour, frame in enumerate(blocks):
        for trade_id in (frame["trade_id"][0], frame["trade_id"][-1]):
            assert data.trade_block_of("ETHUSDT", trade_id, ODD) == (days[1], hour)


def test_trades_between_ids_matches_the_days_it_spans() -> None:
    both = pl.concat([data.day_trades("SOLUSDT", d, SMALL) for d in (D2024, D2025)])
    first = data.first_trade_id("SOLUSDT", D2025, SMALL) - 37
    sliced = data.trades_between_ids("SOLUSDT", first, first + 99, SMALL)
    assert sliced.equals(both.filter(pl.col("trade_id").is_between(first, first + 99)))


def test_time_unit_is_ms_before_2025_and_us_from_2025() -> None:
    before = data.day_trades("BTCUSDT", D2024, SMALL)["time"]
    after = data.day_trades("BTCUSDT", D2025, SMALL)["time"]
    assert before.cast(pl.String).str.len_chars().eq(13).all()
    assert after.cast(pl.String).str.len_chars().eq(16).all()
    assert before.diff().drop_nulls().ge(0).all() and after.diff().drop_nulls().ge(0).all()
    start_ms = int(dt.datetime(2024, 12, 31, tzinfo=dt.UTC).timestamp() * 1000)
    assert start_ms <= before.min() and before.max() < start_ms + 86_400_000
    assert after.min() >= (start_ms + 86_400_000) * 1000
    raw = data.to_raw_trades(
        pl.concat([data.day_trades("BTCUSDT", d, SMALL) for d in (D2024, D2025)])
    )
    assert raw.schema == RAW_TRADES
    assert raw["ts"].dt.date().unique().sort().to_list() == [D2024, D2025]


def test_prices_sizes_and_quote_qty_are_consistent() -> None:
    frame = data.day_trades("BTCUSDT", D2025, SimConfig(trades_per_day=50_000))
    assert ((frame["price"] * 100).round(0) - frame["price"] * 100).abs().max() < 1e-6
    assert frame["qty"].min() >= 0.00001
    assert ((frame["price"] * frame["qty"]).round(8) - frame["quote_qty"]).abs().max() < 1e-8
    assert frame["price"].min() > 10_000 and frame["price"].max() < 500_000
    # Continuous across the day boundary: no jump at midnight.
    prev = data.day_trades("BTCUSDT", D2024, SimConfig(trades_per_day=50_000))
    assert abs(frame["price"][0] / prev["price"][-1] - 1) < 0.005


def test_quotes_are_consistent_with_trade_prints() -> None:
    frame = data.day_trades("ETHUSDT", D2025, SMALL)
    ts = frame["time"].to_numpy()
    unique = np.concatenate(([True], np.diff(ts) > 0)) & np.concatenate((np.diff(ts) > 0, [True]))
    quotes = quotes_at("ETHUSDT", ts[unique], SMALL)
    trades = frame.filter(pl.Series(unique))
    assert (quotes["bid_price"] < quotes["ask_price"]).all()
    at_bid = trades["price"] == quotes["bid_price"]
    at_ask = trades["price"] == quotes["ask_price"]
    assert (at_bid == trades["is_buyer_maker"]).all() and (at_ask != trades["is_buyer_maker"]).all()
    book = depth_at("ETHUSDT", int(ts[100]), SMALL, levels=20)
    quote = quote_at("ETHUSDT", int(ts[100]), SMALL)
    assert (book.bid_prices[0], book.ask_prices[0]) == (quote.bid_price, quote.ask_price)
    assert (book.bid_qtys[0], book.update_id) == (quote.bid_qty, quote.update_id)
    assert (np.diff(book.bid_prices) < 0).all() and (np.diff(book.ask_prices) > 0).all()


def test_csv_lines_have_the_real_archive_shape() -> None:
    for sample in ("BTCUSDT-trades-2024-12-31.head.csv", "BTCUSDT-trades-2025-01-01.head.csv"):
        real = (BINANCE_VISION / sample).read_text().splitlines()[0]
        assert CSV_LINE.match(real), real  # the pattern describes the real file
    for day, digits in ((D2024, 13), (D2025, 16)):
        text = archive_csv_bytes("BTCUSDT", day, SMALL).decode()
        assert text.endswith("\n") and "\r" not in text
        lines = text.splitlines()
        assert len(lines) == SMALL.trades_per_day
        assert all(CSV_LINE.match(line) for line in lines)
        assert len(CSV_LINE.match(lines[0])["time"]) == digits
        parsed = pl.read_csv(
            io.BytesIO(text.encode()),
            has_header=False,
            new_columns=list(data.TRADE_SCHEMA),
            schema_overrides=data.TRADE_SCHEMA,
        )
        assert parsed.equals(data.day_trades("BTCUSDT", day, SMALL))


def test_archive_csv_gaps_and_truncation() -> None:
    first = data.first_trade_id("BTCUSDT", D2025, SMALL)
    gaps = [(first + 10, first + 19), (first + 500, first + 500)]
    lines = archive_csv_bytes("BTCUSDT", D2025, SMALL, gaps=gaps).decode().splitlines()
    ids = {int(line.split(",")[0]) for line in lines}
    assert len(lines) == SMALL.trades_per_day - 11
    assert first + 9 in ids and first + 10 not in ids and first + 500 not in ids
    cut = archive_csv_bytes("BTCUSDT", D2025, SMALL, truncate=True)
    assert not cut.endswith(b"\n") and not CSV_LINE.match(cut.decode().splitlines()[-1])


# --- the HTTP side -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(SMALL, clock=lambda: NOW) as running:
        yield running


@pytest.fixture
def client(sim: Simulator) -> Iterator[httpx.Client]:
    sim.reset()
    with httpx.Client(base_url=sim.base_url, timeout=10) as http:
        yield http
    sim.reset()


def test_zip_and_checksum_verify(client: httpx.Client, sim: Simulator) -> None:
    day = dt.date(2025, 1, 2)
    response = client.get(_zip_url("BTCUSDT", day))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert int(response.headers["content-length"]) == len(response.content)
    sidecar = client.get(_zip_url("BTCUSDT", day) + ".CHECKSUM").text
    assert (
        sidecar == f"{hashlib.sha256(response.content).hexdigest()}  BTCUSDT-trades-2025-01-02.zip"
    )
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.namelist() == ["BTCUSDT-trades-2025-01-02.csv"]
        assert archive.read(archive.namelist()[0]) == archive_csv_bytes("BTCUSDT", day, SMALL)
    # Built once, then served from the cache with identical bytes.
    assert client.get(_zip_url("BTCUSDT", day)).content == response.content
    assert sim.stats.archive_builds == 1
    head = client.head(_zip_url("BTCUSDT", day))
    assert head.content == b"" and int(head.headers["content-length"]) == len(response.content)
    part = client.get(_zip_url("BTCUSDT", day), headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == response.content[100:200]


def test_concurrent_downloads_share_one_build(sim: Simulator) -> None:
    sim.reset()
    url = f"{sim.base_url}{_zip_url('ETHUSDT', dt.date(2024, 11, 5))}"
    bodies: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: bodies.append(httpx.get(url).content)) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(bodies)) == 1 and len(bodies[0]) > 1000
    assert sim.stats.archive_builds == 1


def test_ground_truth_is_the_archive_content(client: httpx.Client, sim: Simulator) -> None:
    day = dt.date(2025, 1, 2)
    rows = _csv_rows(client.get(_zip_url("ETHUSDT", day)).content)
    parsed = pl.read_csv(
        io.StringIO("\n".join(rows)),
        has_header=False,
        new_columns=list(data.TRADE_SCHEMA),
        schema_overrides=data.TRADE_SCHEMA,
    )
    assert data.to_raw_trades(parsed).equals(sim.ground_truth("ETHUSDT", day))


@pytest.mark.parametrize(
    "path",
    [
        _zip_url("BTCUSDT", NOW.date()),  # today: not complete yet
        _zip_url("BTCUSDT", dt.date(2025, 1, 4)),
        _zip_url("DOGEUSDT", dt.date(2025, 1, 1)),  # not a configured symbol
        _zip_url("BTCUSDT", dt.date(2017, 6, 30)),  # before the origin
        "/data/spot/daily/trades/BTCUSDT/ETHUSDT-trades-2025-01-01.zip",
        "/data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2025-13-01.zip",
        "/data/spot/daily/trades/btcusdt/btcusdt-trades-2025-01-01.zip",
    ],
)
def test_archive_404s(client: httpx.Client, path: str) -> None:
    for suffix in ("", ".CHECKSUM"):
        response = client.get(path + suffix)
        assert response.status_code == 404
        assert "NoSuchKey" in response.text


def test_archive_faults(client: httpx.Client, sim: Simulator) -> None:
    day = dt.date(2024, 12, 20)
    key = ("SOLUSDT", day)
    url = _zip_url("SOLUSDT", day)
    clean = client.get(url).content

    sim.faults.unpublished.add(key)
    assert client.get(url).status_code == 404
    sim.faults.unpublished.clear()

    sim.faults.wrong_checksum.add(key)
    sidecar = client.get(url + ".CHECKSUM").text.split("  ")[0]
    assert sidecar != hashlib.sha256(client.get(url).content).hexdigest()
    sim.faults.wrong_checksum.clear()

    sim.faults.corrupt_zip.add(key)
    corrupt = client.get(url).content
    assert len(corrupt) < len(clean)
    assert client.get(url + ".CHECKSUM").text.startswith(hashlib.sha256(corrupt).hexdigest())
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(corrupt))
    sim.faults.corrupt_zip.clear()

    sim.faults.truncated_csv.add(key)
    cut = client.get(url).content
    assert client.get(url + ".CHECKSUM").text.startswith(hashlib.sha256(cut).hexdigest())
    last = _csv_rows(cut)[-1]
    assert not CSV_LINE.match(last)
    sim.faults.truncated_csv.clear()

    first = data.first_trade_id("SOLUSDT", day, SMALL)
    sim.faults.archive_gaps[key] = [(first + 5, first + 9)]
    ids = [int(row.split(",")[0]) for row in _csv_rows(client.get(url).content)]
    assert len(ids) == SMALL.trades_per_day - 5 and first + 7 not in ids
    rest = client.get(
        "/api/v3/historicalTrades", params={"symbol": "SOLUSDT", "fromId": first + 5, "limit": 5}
    ).json()
    assert [t["id"] for t in rest] == list(range(first + 5, first + 10))
    sim.faults.archive_gaps.clear()
    assert client.get(url).content == clean

    sim.faults.archive_fail_5xx = 1
    assert client.get(url).status_code == 503
    assert client.get(url).status_code == 200


def _keys(sample: str) -> set[str]:
    return set(json.loads((BINANCE_REST / sample).read_text())[0])


def test_rest_shapes_match_binance(client: httpx.Client) -> None:
    trades = client.get("/api/v3/trades", params={"symbol": "BTCUSDT", "limit": 3}).json()
    assert len(trades) == 3 and set(trades[0]) == _keys("nautilus_http_spot_market_trades.json")
    hist = client.get("/api/v3/historicalTrades", params={"symbol": "BTCUSDT"}).json()
    assert len(hist) == 500 and set(hist[0]) == _keys(
        "nautilus_http_spot_market_historical_trades.json"
    )
    agg = client.get("/api/v3/aggTrades", params={"symbol": "BTCUSDT", "limit": 4}).json()
    assert set(agg[0]) == _keys("nautilus_http_spot_market_agg_trades.json")
    assert all(a["a"] == a["f"] == a["l"] for a in agg)
    for obj in trades:
        assert re.fullmatch(r"\d+\.\d{8}", obj["price"]) and re.fullmatch(r"\d+\.\d{8}", obj["qty"])
        assert len(str(obj["time"])) == 13  # REST is ms even after 2025
        assert obj["time"] <= NOW.timestamp() * 1000

    depth = client.get("/api/v3/depth", params={"symbol": "ETHUSDT", "limit": 10}).json()
    assert set(depth) == {"lastUpdateId", "bids", "asks"}
    bids = [float(p) for p, _ in depth["bids"]]
    asks = [float(p) for p, _ in depth["asks"]]
    assert (
        len(bids) == len(asks) == 10 and bids == sorted(bids, reverse=True) and asks == sorted(asks)
    )
    assert bids[0] < asks[0]

    info = client.get("/api/v3/exchangeInfo").json()
    real = json.loads(
        (BINANCE_REST / "DOCEXAMPLE_nautilus_crates_spot_exchange_info_response.json").read_text()
    )
    assert {"timezone", "serverTime", "rateLimits", "exchangeFilters", "symbols"} <= set(info)
    assert [s["symbol"] for s in info["symbols"]] == list(SMALL.symbols)
    assert set(real["symbols"][0]) <= set(info["symbols"][0])
    assert {s["status"] for s in info["symbols"]} == {"TRADING"}
    assert client.get("/api/v3/time").json() == {"serverTime": int(NOW.timestamp() * 1000)}
    assert client.get("/api/v3/ping").json() == {}


def test_trades_exist_only_up_to_now(client: httpx.Client) -> None:
    latest = data.last_trade_id_at("BTCUSDT", NOW, SMALL)
    trades = client.get("/api/v3/trades", params={"symbol": "BTCUSDT", "limit": 1000}).json()
    assert trades[-1]["id"] == latest and len(trades) == 1000
    ahead = client.get(
        "/api/v3/historicalTrades", params={"symbol": "BTCUSDT", "fromId": latest - 1}
    )
    assert [t["id"] for t in ahead.json()] == [latest - 1, latest]
    empty = client.get(
        "/api/v3/historicalTrades", params={"symbol": "BTCUSDT", "fromId": latest + 1}
    )
    assert empty.json() == []


@pytest.mark.parametrize("day", [dt.date(2024, 12, 31), dt.date(2025, 1, 1)])
def test_historical_trades_equal_archive_rows(client: httpx.Client, day: dt.date) -> None:
    rows = _csv_rows(client.get(_zip_url("BTCUSDT", day)).content)
    start = 700  # the page crosses hour blocks
    page = client.get(
        "/api/v3/historicalTrades",
        params={"symbol": "BTCUSDT", "fromId": int(rows[start].split(",")[0]), "limit": 1000},
    ).json()
    assert len(page) == 1000
    for obj, row in zip(page, rows[start : start + 1000], strict=True):
        trade_id, price, qty, quote, time, maker, best = row.split(",")
        assert (str(obj["id"]), obj["price"], obj["qty"], obj["quoteQty"]) == (
            trade_id,
            price,
            qty,
            quote,
        )
        assert obj["time"] == int(time) // (1000 if len(time) == 16 else 1)
        assert (obj["isBuyerMaker"], obj["isBestMatch"]) == (maker == "True", best == "True")


def test_agg_trades_by_time(client: httpx.Client) -> None:
    start = int(dt.datetime(2025, 1, 2, 5, tzinfo=dt.UTC).timestamp() * 1000)
    page = client.get(
        "/api/v3/aggTrades",
        params={"symbol": "SOLUSDT", "startTime": start, "endTime": start + 600_000, "limit": 1000},
    ).json()
    assert page and all(start <= a["T"] <= start + 600_000 for a in page)
    first = data.first_trade_id_at_or_after("SOLUSDT", start * 1000, SMALL)
    assert page[0]["a"] == first
    too_long = client.get(
        "/api/v3/aggTrades",
        params={"symbol": "SOLUSDT", "startTime": start, "endTime": start + 3_600_001},
    )
    assert too_long.status_code == 400 and too_long.json()["code"] == -1127


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"symbol": "NOPEUSDT"}, -1121),
        ({}, -1102),
        ({"symbol": "BTCUSDT", "limit": "ten"}, -1100),
        ({"symbol": "BTCUSDT", "limit": "5000"}, -1130),
        ({"symbol": "BTCUSDT", "fromId": ""}, -1105),
    ],
)
def test_rest_errors(client: httpx.Client, params: dict[str, str], code: int) -> None:
    response = client.get("/api/v3/historicalTrades", params=params)
    assert response.status_code == 400
    assert response.json()["code"] == code and response.json()["msg"]


def test_weight_header_and_503s(client: httpx.Client, sim: Simulator) -> None:
    used = [
        int(client.get(path, params={"symbol": "BTCUSDT"}).headers["x-mbx-used-weight-1m"])
        for path in (
            "/api/v3/ping",
            "/api/v3/historicalTrades",
            "/api/v3/aggTrades",
            "/api/v3/depth",
        )
    ]
    assert used == [1, 26, 30, 35]
    sim.faults.fail_5xx = 2
    statuses = [client.get("/api/v3/ping").status_code for _ in range(3)]
    assert statuses == [503, 503, 200]


class FakeTimer:
    def __init__(self) -> None:
        self.now = 1_000.25

    def __call__(self) -> float:
        return self.now


def test_429_then_418_when_retry_after_is_ignored(client: httpx.Client, sim: Simulator) -> None:
    timer = FakeTimer()
    sim.limiter = WeightLimiter(60, 2.0, timer)
    params = {"symbol": "BTCUSDT", "limit": 1}
    assert [client.get("/api/v3/trades", params=params).status_code for _ in range(2)] == [200, 200]
    told = client.get("/api/v3/trades", params=params)
    assert told.status_code == 429 and told.json()["code"] == -1003
    assert told.headers["retry-after"] == "2" and told.headers["x-mbx-used-weight-1m"] == "50"
    # A client that waits as told gets through.
    timer.now += 2
    assert client.get("/api/v3/trades", params=params).status_code == 200
    assert sim.stats.count_418 == 0
    # One that keeps hammering is banned for two windows.
    client.get("/api/v3/trades", params=params)
    statuses = [client.get("/api/v3/trades", params=params).status_code for _ in range(4)]
    assert statuses == [429, 429, 429, 418]
    banned = client.get("/api/v3/ping")
    assert banned.status_code == 418 and int(banned.headers["retry-after"]) >= 3
    assert (sim.stats.count_429, sim.stats.count_418) == (4, 2)
    timer.now += 4
    assert client.get("/api/v3/ping").status_code == 200
    sim.limiter = WeightLimiter(sim.weight_limit, 60.0)


def test_runtime_weight_limit_override(client: httpx.Client, sim: Simulator) -> None:
    sim.faults.weight_limit = 0
    response = client.get("/api/v3/ping")
    assert response.status_code == 429 and int(response.headers["retry-after"]) >= 1


def test_run_serves_until_stopped() -> None:
    stop, started = threading.Event(), []
    thread = threading.Thread(
        target=run, args=(0, SMALL), kwargs={"ready": started.append, "stop": stop}, daemon=True
    )
    thread.start()
    for _ in range(100):
        if started:
            break
        threading.Event().wait(0.05)
    assert httpx.get(f"{started[0].base_url}/api/v3/ping").json() == {}
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
