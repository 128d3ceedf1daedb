"""OKX's and Deribit's REST trade histories as a backfill reads them: one UTC day at a time,
against the simulator on loopback; their page parsers on the real answers."""

from __future__ import annotations

import datetime as dt

import orjson
import polars as pl
import pytest
from support.samples import DERIBIT_REST_TRADES, OKX_REST_TRADES
from support.scripted_server import Reply, ScriptedServer

from marketlake.exchanges.deribit import rest as deribit_rest
from marketlake.exchanges.deribit.rest import DeribitRest
from marketlake.exchanges.errors import ResponseFormatError, RestError
from marketlake.exchanges.okx import rest as okx_rest
from marketlake.exchanges.okx.rest import OkxRest
from marketlake.exchanges.paced import raw_trades_frame
from marketlake.exchanges.registry import VENUES
from marketlake.schemas import RAW_TRADES
from marketlake.simulator.data import ORIGIN, SimConfig
from marketlake.simulator.server import Simulator

#: ~15 OKX pages and 2 Deribit pages a day: every paging step, in a fraction of a second.
TRADES_PER_DAY = 1_500
SYMBOLS = {"okx": "BTC-USDT", "deribit": "BTC-PERPETUAL"}
CLIENTS = {"okx": OkxRest, "deribit": DeribitRest}
#: A day of millisecond trades (2024) and one of microsecond trades the venues cut to ms.
DAYS = (dt.date(2024, 3, 1), dt.date(2025, 3, 1))
FAST = 50.0  # requests/s: the simulator does not rate-limit these paths that tightly


@pytest.fixture(scope="module")
def sim():
    config = SimConfig(trades_per_day=TRADES_PER_DAY, symbols=tuple(SYMBOLS.values()))
    with Simulator(config) as simulator:
        yield simulator


def to_ms(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col("ts").dt.truncate("1ms"))


@pytest.mark.parametrize("exchange", SYMBOLS)
@pytest.mark.parametrize("day", DAYS, ids=str)
def test_a_day_fetch_returns_every_trade_of_the_day_and_none_outside_it(sim, exchange, day):
    symbol = SYMBOLS[exchange]
    with CLIENTS[exchange](sim.base_url, requests_per_s=FAST) as client:
        got = client.trades_for_day(symbol, day)
    truth = to_ms(sim.ground_truth(symbol, day))
    assert got.schema == RAW_TRADES
    columns = ["trade_id", "price", "qty", "ts", "is_buyer_maker"]
    assert got.select(columns).equals(truth.select(columns))
    assert got["trade_id"].diff().drop_nulls().unique().to_list() == [1]
    midnight = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    assert got["ts"].min() >= midnight and got["ts"].max() < midnight + dt.timedelta(days=1)
    # the neighbours: the previous day ends just before, the next day starts just after
    before = sim.ground_truth(symbol, day - dt.timedelta(days=1))["trade_id"].max()
    after = sim.ground_truth(symbol, day + dt.timedelta(days=1))["trade_id"].min()
    assert (before + 1, after - 1) == (got["trade_id"].min(), got["trade_id"].max())


def test_a_day_before_any_trade_is_empty(sim):
    day = ORIGIN - dt.timedelta(days=1)
    for exchange, symbol in SYMBOLS.items():
        with CLIENTS[exchange](sim.base_url, requests_per_s=FAST) as client:
            assert client.trades_for_day(symbol, day).is_empty()


def test_an_okx_day_whose_history_runs_out_inside_it_is_refused_not_cut(sim):
    # the universe's first trades are on ORIGIN: OKX's pages end before that day's midnight
    with (
        OkxRest(sim.base_url, requests_per_s=FAST) as client,
        pytest.raises(ResponseFormatError, match="history ends at trade id") as refused,
    ):
        client.trades_for_day("BTC-USDT", ORIGIN)
    assert f"OKX {sim.base_url}/api/v5/market/history-trades BTC-USDT" in str(refused.value)


@pytest.mark.parametrize("exchange", SYMBOLS)
def test_an_unknown_instrument_is_refused_naming_the_venue_and_url(sim, exchange):
    symbol = {"okx": "XRP-USDT", "deribit": "XRP-PERPETUAL"}[exchange]
    with (
        CLIENTS[exchange](sim.base_url, requests_per_s=FAST) as client,
        pytest.raises(RestError) as refused,
    ):
        client.trades_for_day(symbol, DAYS[0])
    message = str(refused.value)
    assert VENUES[exchange].title in message and sim.base_url in message
    assert "Instrument ID does not exist" in message or "instrument_not_found" in message


def okx_trade(trade_id: object, ts_ms: int) -> dict:
    return {"instId": "BTC-USDT", "side": "buy", "sz": "0.1", "px": "100.5",
            "tradeId": str(trade_id), "ts": str(ts_ms)}  # fmt: skip


def test_a_malformed_okx_trade_is_refused_naming_the_field():
    body = {"code": "0", "msg": "", "data": [okx_trade("12x", 1709251200000)]}
    with (
        ScriptedServer([Reply(200, orjson.dumps(body))]) as server,
        OkxRest(server.base_url, requests_per_s=FAST) as client,
        pytest.raises(ResponseFormatError, match="mistyped field 'tradeId'") as bad,
    ):
        client.trades_for_day("BTC-USDT", DAYS[0])
    assert f"OKX {server.base_url}/api/v5/market/history-trades BTC-USDT" in str(bad.value)


def test_an_okx_page_that_does_not_move_back_is_refused_not_looped_on():
    midnight_ms = 1709251200000  # 2024-03-01
    same = {"code": "0", "msg": "", "data": [okx_trade(500, midnight_ms + 10)]}
    with (
        ScriptedServer(lambda path: Reply(200, orjson.dumps(same))) as server,
        OkxRest(server.base_url, requests_per_s=FAST) as client,
        pytest.raises(ResponseFormatError, match="below id 500, got id 500"),
    ):
        client.trades_for_day("BTC-USDT", DAYS[0])


def test_a_full_deribit_page_of_one_millisecond_is_refused_not_looped_on():
    ts = 1709251200000 + 5
    trades = [
        {"trade_seq": seq, "timestamp": ts, "price": 1.0, "amount": 10.0, "direction": "buy",
         "instrument_name": "BTC-PERPETUAL", "trade_id": str(seq)}
        for seq in range(1, deribit_rest.PAGE + 1)
    ]  # fmt: skip
    body = orjson.dumps({"jsonrpc": "2.0", "result": {"trades": trades, "has_more": True}})
    with (
        ScriptedServer(lambda path: Reply(200, body)) as server,
        DeribitRest(server.base_url, requests_per_s=FAST) as client,
        pytest.raises(ResponseFormatError, match="paging by time cannot pass") as bad,
    ):
        client.trades_for_day("BTC-PERPETUAL", DAYS[0])
    assert "get_last_trades_by_instrument_and_time" in str(bad.value)


def test_the_okx_parser_reads_a_real_trades_answer():
    rows = okx_rest.parse_page(orjson.loads(OKX_REST_TRADES.read_bytes()), "BTC-USDT")
    frame = raw_trades_frame(rows)
    assert frame["trade_id"].to_list() == [734864332, 734864333]
    assert frame["price"].to_list() == [102537.9, 102537.9]
    assert frame["qty"].to_list() == [0.0000125, 0.00013669]
    assert frame["is_buyer_maker"].to_list() == [False, True]  # taker buy, taker sell
    assert frame["ts"].dt.epoch("ms").to_list() == [1747087161666, 1747087163557]


def test_the_deribit_parser_reads_a_real_trades_answer():
    body = orjson.loads(DERIBIT_REST_TRADES.read_bytes())
    rows, has_more = deribit_rest.parse_page(body, "ETH-PERPETUAL")
    frame = raw_trades_frame(rows)
    assert has_more is True
    assert frame["trade_id"].to_list() == list(range(203024587, 203024597))
    assert frame["qty"].sum() == 115.0 and set(frame["price"]) == {2968.3}
    assert frame["is_buyer_maker"].to_list() == [True] * 9 + [False]
    assert frame["ts"].dt.epoch("ms").to_list()[-2:] == [1766332079917, 1766332079917]


def test_the_clients_keep_under_the_venues_rest_limits():
    for exchange, client in CLIENTS.items():
        limit = VENUES[exchange].limits.rest_requests_per_s
        with client("http://127.0.0.1:1") as made:
            assert limit is not None and 1 / made.http.spacing_s < limit
