"""The simulator's OKX and Deribit trade histories page by time as the venues document."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from marketlake.simulator.data import SimConfig
from marketlake.simulator.server import Simulator

OKX_PATH = "/api/v5/market/history-trades"
DERIBIT_PATH = "/api/v2/public/get_last_trades_by_instrument_and_time"
NOON_MS = int(dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC).timestamp() * 1000)


@pytest.fixture(scope="module")
def sim():
    config = SimConfig(trades_per_day=2_000, symbols=("BTC-USDT", "BTC-PERPETUAL"))
    with Simulator(config) as simulator:
        yield simulator


def get(sim: Simulator, path: str, **params: object) -> httpx.Response:
    return httpx.get(f"{sim.base_url}{path}", params={k: str(v) for k, v in params.items()})


def okx(sim: Simulator, **params: object) -> list[dict]:
    body = get(sim, OKX_PATH, instId="BTC-USDT", **params).json()
    assert body["code"] == "0", body
    return body["data"]


def test_okx_type_2_pages_by_time_around_a_millisecond(sim):
    before_noon = okx(sim, type=2, after=NOON_MS, limit=100)
    ids = [int(t["tradeId"]) for t in before_noon]
    assert len(ids) == 100 and ids == sorted(ids, reverse=True)
    assert all(int(t["ts"]) < NOON_MS for t in before_noon)
    after_noon = okx(sim, type=2, before=NOON_MS, limit=100)
    assert all(int(t["ts"]) > NOON_MS for t in after_noon)
    # the two pages meet: between them by id, only trades of that very millisecond
    first_after = min(int(t["tradeId"]) for t in after_noon)
    between = [t for t in okx(sim, type=1, after=first_after) if int(t["tradeId"]) > ids[0]]
    assert all(int(t["ts"]) == NOON_MS for t in between)


def test_okx_refuses_an_unknown_paging_type(sim):
    body = get(sim, OKX_PATH, instId="BTC-USDT", type=3, after=NOON_MS).json()
    assert (body["code"], body["data"]) == ("51000", [])


def deribit(sim: Simulator, **params: object) -> dict:
    response = get(sim, DERIBIT_PATH, instrument_name="BTC-PERPETUAL", **params)
    assert response.status_code == 200, response.text
    return response.json()["result"]


def test_deribit_pages_a_time_range_oldest_or_newest_first(sim):
    hour = 3_600_000
    oldest = deribit(sim, start_timestamp=NOON_MS, end_timestamp=NOON_MS + hour, count=10)
    newest = deribit(
        sim, start_timestamp=NOON_MS, end_timestamp=NOON_MS + hour, count=10, sorting="desc"
    )
    assert oldest["has_more"] and newest["has_more"]
    seqs = [t["trade_seq"] for t in oldest["trades"]]
    assert seqs == list(range(seqs[0], seqs[0] + 10))
    assert oldest["trades"][0]["timestamp"] >= NOON_MS
    assert [t["trade_seq"] for t in newest["trades"]] == sorted(
        (t["trade_seq"] for t in newest["trades"]), reverse=True
    )
    assert all(t["timestamp"] <= NOON_MS + hour for t in newest["trades"])
    whole = deribit(sim, start_timestamp=NOON_MS, end_timestamp=NOON_MS + hour, count=1000)
    assert not whole["has_more"]
    assert whole["trades"][-1]["trade_seq"] == newest["trades"][0]["trade_seq"]


def test_deribit_refuses_a_range_with_no_bound(sim):
    response = get(sim, DERIBIT_PATH, instrument_name="BTC-PERPETUAL", count=10)
    assert response.status_code == 400 and response.json()["error"]["code"] == -32602
